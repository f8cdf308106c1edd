-- ccgw store on Postgres, schema 1: the same tables as the SQLite schema after its migration
-- 13 (migrations/sqlite/), in one step. Timestamps are unix milliseconds (BIGINT); ids are
-- strings. JSON values are kept as TEXT, as on SQLite, so both backends store and search the
-- same text. Keys that are sorted use the "C" collation: byte order, as on SQLite, whatever
-- the database's locale.

CREATE TABLE sessions (
    id                TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    cli_session_id    TEXT    NOT NULL,
    workspace         TEXT    NOT NULL,
    workspace_is_temp BOOLEAN NOT NULL DEFAULT FALSE,
    model             TEXT COLLATE "C" NOT NULL,
    agent             TEXT,
    permission_mode   TEXT,
    system_prompt     TEXT,
    allowed_tools     TEXT    NOT NULL DEFAULT '[]',
    title             TEXT,
    status            TEXT    NOT NULL,
    -- At most one session holds a given history key; NULLs do not collide.
    history_key       TEXT    UNIQUE,
    source            TEXT    NOT NULL,
    -- Last event sequence number handed out for this session (events.seq).
    last_event_seq    BIGINT  NOT NULL DEFAULT 0,
    created_at        BIGINT  NOT NULL,
    updated_at        BIGINT  NOT NULL,
    tools             TEXT    NOT NULL DEFAULT '[]',
    forked_from       TEXT,
    transcript_leaf   TEXT,
    turn_mark         TEXT,
    owner             TEXT COLLATE "C" NOT NULL DEFAULT '',
    project_id        TEXT
);
CREATE INDEX sessions_created ON sessions (created_at, id);
CREATE INDEX sessions_cli_session ON sessions (cli_session_id);
CREATE INDEX sessions_by_owner ON sessions (owner, created_at);
CREATE INDEX sessions_by_project ON sessions (project_id, created_at);

CREATE TABLE events (
    session_id TEXT   NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    seq        BIGINT NOT NULL,
    turn_id    TEXT   NOT NULL,
    kind       TEXT   NOT NULL,
    payload    TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (session_id, seq)
);

CREATE TABLE tool_calls (
    session_id     TEXT   NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    id             TEXT COLLATE "C" NOT NULL,
    turn_id        TEXT   NOT NULL,
    tool           TEXT   NOT NULL,
    kind           TEXT   NOT NULL,
    argument_bytes BIGINT NOT NULL,
    outcome        TEXT,
    duration_ms    BIGINT,
    created_at     BIGINT NOT NULL,
    PRIMARY KEY (session_id, id)
);

CREATE TABLE usage (
    id                          TEXT   NOT NULL PRIMARY KEY,
    session_id                  TEXT   NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    turn_id                     TEXT   NOT NULL,
    model                       TEXT COLLATE "C" NOT NULL,
    input_tokens                BIGINT NOT NULL,
    output_tokens               BIGINT NOT NULL,
    cache_creation_input_tokens BIGINT NOT NULL,
    cache_read_input_tokens     BIGINT NOT NULL,
    cost_usd                    DOUBLE PRECISION,
    duration_ms                 BIGINT NOT NULL,
    created_at                  BIGINT NOT NULL,
    owner                       TEXT COLLATE "C" NOT NULL DEFAULT '',
    end_user                    TEXT COLLATE "C",
    outcome                     TEXT   NOT NULL DEFAULT 'completed'
);
CREATE INDEX usage_session ON usage (session_id, created_at);
CREATE INDEX usage_by_owner ON usage (owner, created_at);
CREATE INDEX usage_by_time ON usage (created_at);

CREATE TABLE replies (
    id          TEXT   NOT NULL PRIMARY KEY,
    kind        TEXT   NOT NULL,
    owner       TEXT   NOT NULL,
    previous_id TEXT,
    body        TEXT   NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX replies_created ON replies (created_at);

CREATE TABLE agents (
    name        TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    description TEXT   NOT NULL,
    prompt      TEXT   NOT NULL,
    tools       TEXT,
    model       TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE session_settings (
    session_id TEXT NOT NULL PRIMARY KEY REFERENCES sessions (id) ON DELETE CASCADE,
    settings   TEXT NOT NULL
);

CREATE TABLE api_keys (
    id          TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    name        TEXT   NOT NULL,
    role        TEXT   NOT NULL,
    prefix      TEXT   NOT NULL,
    secret_hash TEXT   NOT NULL UNIQUE,
    policy      TEXT   NOT NULL DEFAULT '{}',
    limits      TEXT   NOT NULL DEFAULT '{}',
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    expires_at  BIGINT,
    revoked_at  BIGINT
);

CREATE TABLE projects (
    id          TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    owner       TEXT   NOT NULL,
    name        TEXT   NOT NULL,
    description TEXT   NOT NULL DEFAULT '',
    defaults    TEXT   NOT NULL DEFAULT '{}',
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX projects_by_owner ON projects (owner, created_at);

-- The audit log: append-only, like SQLite's (its triggers refuse UPDATE and DELETE; these
-- refuse TRUNCATE too). Nothing references another table.
CREATE TABLE audit_log (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         BIGINT NOT NULL,
    kind       TEXT   NOT NULL,
    key_id     TEXT,
    key_label  TEXT,
    session_id TEXT,
    subject    TEXT,
    detail     TEXT   NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_by_kind ON audit_log (kind, id);
CREATE INDEX audit_by_key ON audit_log (key_id, id);
CREATE INDEX audit_by_session ON audit_log (session_id, id);
CREATE INDEX audit_by_time ON audit_log (at);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
