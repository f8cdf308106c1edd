-- ccgw store, schema 14: session leases (several instances on one Postgres, docs/instances.md).
-- One row per session that ever ran a turn: the instance holding it (`holder`, a random id per
-- start), `epoch` (bumped by every acquire, so an instance can tell whether anyone ran a turn
-- since its own last one) and `expires_at` (unix ms; 0 once released). No foreign key: a
-- lease outlives nothing and is cheap to leave behind.
CREATE TABLE session_leases (
    session_id TEXT    NOT NULL PRIMARY KEY,
    holder     TEXT    NOT NULL,
    epoch      INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
