-- ccgw store, schema 10: API keys kept in the store (`ccgw keys`, `/admin/api/keys`). Only a
-- SHA-256 of each secret is kept; `prefix` is the secret's first characters, to recognize it in
-- a listing. `policy` and `limits` are JSON objects the domain reads (tenants.rs). A revoked
-- key stays, so what it owns keeps an owner. `updated_at` moves on every change, so a running
-- gateway notices changes made by `ccgw keys` in another process.
CREATE TABLE api_keys (
    id          TEXT    NOT NULL PRIMARY KEY,
    name        TEXT    NOT NULL,
    role        TEXT    NOT NULL,
    prefix      TEXT    NOT NULL,
    secret_hash TEXT    NOT NULL UNIQUE,
    policy      TEXT    NOT NULL DEFAULT '{}',
    limits      TEXT    NOT NULL DEFAULT '{}',
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    expires_at  INTEGER,
    revoked_at  INTEGER
);

-- Who made each session (a stored key's id, a static key's fingerprint, '' without keys).
ALTER TABLE sessions ADD COLUMN owner TEXT NOT NULL DEFAULT '';
CREATE INDEX sessions_by_owner ON sessions (owner, created_at);
