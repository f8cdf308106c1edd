-- ccgw store, schema 1: sessions, their history events, tool calls and usage.
-- Timestamps are unix milliseconds (INTEGER); ids are strings (UUIDs, or the CLI's own ids).
-- JSON values are stored as TEXT. Written to stay close to what Postgres accepts.

CREATE TABLE sessions (
    id                TEXT    NOT NULL PRIMARY KEY,
    cli_session_id    TEXT    NOT NULL,
    workspace         TEXT    NOT NULL,
    workspace_is_temp INTEGER NOT NULL DEFAULT 0,
    model             TEXT    NOT NULL,
    agent             TEXT,
    permission_mode   TEXT,
    system_prompt     TEXT,
    allowed_tools     TEXT    NOT NULL DEFAULT '[]',
    title             TEXT,
    status            TEXT    NOT NULL,
    -- Hash of the message history the session currently ends at (see conversation.rs).
    -- At most one session holds a given key; NULLs do not collide.
    history_key       TEXT    UNIQUE,
    source            TEXT    NOT NULL,
    -- Last event sequence number handed out for this session (events.seq), so appends
    -- get gapless numbers without reading the events table.
    last_event_seq    INTEGER NOT NULL DEFAULT 0,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);

-- Keyset pagination: ORDER BY created_at DESC, id DESC.
CREATE INDEX sessions_created ON sessions (created_at, id);
CREATE INDEX sessions_cli_session ON sessions (cli_session_id);

CREATE TABLE events (
    session_id TEXT    NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    turn_id    TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    payload    TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (session_id, seq)
);

CREATE TABLE tool_calls (
    session_id     TEXT    NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    -- The model's tool_use id.
    id             TEXT    NOT NULL,
    turn_id        TEXT    NOT NULL,
    tool           TEXT    NOT NULL,
    kind           TEXT    NOT NULL,
    argument_bytes INTEGER NOT NULL,
    outcome        TEXT,
    duration_ms    INTEGER,
    created_at     INTEGER NOT NULL,
    PRIMARY KEY (session_id, id)
);

CREATE TABLE usage (
    id                          TEXT    NOT NULL PRIMARY KEY,
    session_id                  TEXT    NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    turn_id                     TEXT    NOT NULL,
    model                       TEXT    NOT NULL,
    input_tokens                INTEGER NOT NULL,
    output_tokens               INTEGER NOT NULL,
    cache_creation_input_tokens INTEGER NOT NULL,
    cache_read_input_tokens     INTEGER NOT NULL,
    cost_usd                    REAL,
    duration_ms                 INTEGER NOT NULL,
    created_at                  INTEGER NOT NULL
);

CREATE INDEX usage_session ON usage (session_id, created_at);
