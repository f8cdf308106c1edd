-- ccgw store, schema 4: replies the compatible APIs keep so later requests can refer to them
-- (OpenAI Responses for `previous_response_id` and `GET /v1/responses/{id}`, Anthropic thread
-- messages for `thread.previous_message_id`). Each holds only what its turn added; a
-- conversation is the chain of `previous_id`s. `owner` is who made it (a key's fingerprint).
CREATE TABLE replies (
    id          TEXT    NOT NULL PRIMARY KEY,
    kind        TEXT    NOT NULL,
    owner       TEXT    NOT NULL,
    previous_id TEXT,
    body        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE INDEX replies_created ON replies (created_at);
