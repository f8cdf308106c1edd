-- ccgw store, schema 11: projects (issue 11 §7). A project belongs to the key that made it
-- (`owner`, like sessions.owner) and holds defaults for the sessions made in it, as a JSON
-- object the domain reads (domain/projects.rs). A session names its project in
-- `sessions.project_id`; a project with sessions is not deleted (the API answers 409).
CREATE TABLE projects (
    id          TEXT    NOT NULL PRIMARY KEY,
    owner       TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    description TEXT    NOT NULL DEFAULT '',
    defaults    TEXT    NOT NULL DEFAULT '{}',
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX projects_by_owner ON projects (owner, created_at);

ALTER TABLE sessions ADD COLUMN project_id TEXT;
CREATE INDEX sessions_by_project ON sessions (project_id, created_at);
