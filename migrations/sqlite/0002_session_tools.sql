-- ccgw store, schema 2: a native session's built-in tools (allowed_tools are the ones that run
-- without asking) and the session it was forked from.
ALTER TABLE sessions ADD COLUMN tools TEXT NOT NULL DEFAULT '[]';
ALTER TABLE sessions ADD COLUMN forked_from TEXT;
