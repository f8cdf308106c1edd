-- ccgw store on Postgres, schema 2: session leases, as migration 14 of the SQLite schema. One
-- row per session that ever ran a turn: the instance holding it (`holder`, a random id per
-- start), `epoch` (bumped by every acquire, so an instance can tell whether anyone ran a turn
-- since its own last one) and `expires_at` (unix ms of the database's clock; 0 once released).
CREATE TABLE session_leases (
    session_id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    holder     TEXT   NOT NULL,
    epoch      BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
