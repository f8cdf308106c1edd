-- ccgw store, schema 8: the gateway's custom agents (passed to every CLI process in
-- `initialize.agents`), and a native session's run-time settings that have no column of their
-- own (thinking, effort, max_turns, append_system_prompt), as one JSON object.
CREATE TABLE agents (
    name        TEXT    NOT NULL PRIMARY KEY,
    description TEXT    NOT NULL,
    prompt      TEXT    NOT NULL,
    tools       TEXT,
    model       TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE session_settings (
    session_id TEXT NOT NULL PRIMARY KEY REFERENCES sessions (id) ON DELETE CASCADE,
    settings   TEXT NOT NULL
);
