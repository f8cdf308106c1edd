-- ccgw store, schema 12: usage per key and end user (issue 11 §4-5). Every usage row names the
-- key whose turn it was (`owner`, as sessions do), the end user the client named (OpenAI
-- `user`, Anthropic `metadata.user_id`) and how the turn ended (`outcome`: `completed`,
-- `tool_calls`, `stop_sequence` or an error label), so reports group by key, model, day and
-- user and count errors, and budgets are loaded per key at start.
ALTER TABLE usage ADD COLUMN owner TEXT NOT NULL DEFAULT '';
ALTER TABLE usage ADD COLUMN end_user TEXT;
ALTER TABLE usage ADD COLUMN outcome TEXT NOT NULL DEFAULT 'completed';

-- Rows from before this schema belong to their session's owner.
UPDATE usage SET owner = COALESCE((SELECT owner FROM sessions WHERE sessions.id = usage.session_id), '');

CREATE INDEX usage_by_owner ON usage (owner, created_at);
CREATE INDEX usage_by_time ON usage (created_at);
