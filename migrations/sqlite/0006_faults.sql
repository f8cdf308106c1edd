-- ccgw store, schema 6: where a session's CLI transcript ends, so a resume continues exactly
-- the conversation its client holds. `transcript_leaf` is the uuid of the last line the CLI
-- wrote for the last turn that ended cleanly; `turn_mark` is the uuid the next user line
-- carries, so a turn that never ended (a crash, a kill) can be cut off the transcript.
ALTER TABLE sessions ADD COLUMN transcript_leaf TEXT;
ALTER TABLE sessions ADD COLUMN turn_mark TEXT;
