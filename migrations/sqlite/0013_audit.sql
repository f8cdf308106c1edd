-- ccgw store, schema 13: the audit log (issue 11 §6). Append-only: the triggers refuse every
-- UPDATE and DELETE, and nothing references another table, so deleting a session or revoking
-- a key leaves its entries. `key_id` is the acting key (a stored key's id, a static key's
-- fingerprint, '' without keys); when the writer did not know it (a tool call the CLI made),
-- it is the session's owner at the time the entry was written. `detail` is a JSON object that
-- never holds a secret (the domain's audit module strips and caps it before it gets here).
CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         INTEGER NOT NULL,
    kind       TEXT    NOT NULL,
    key_id     TEXT,
    key_label  TEXT,
    session_id TEXT,
    subject    TEXT,
    detail     TEXT    NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_by_kind ON audit_log (kind, id);
CREATE INDEX audit_by_key ON audit_log (key_id, id);
CREATE INDEX audit_by_session ON audit_log (session_id, id);
CREATE INDEX audit_by_time ON audit_log (at);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
