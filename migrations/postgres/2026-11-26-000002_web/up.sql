-- The web pages: sign-in for workers and requesters, the qualification test, Prolific completion.

-- A local worker account's password (argon2id PHC string); NULL for workers who come from MTurk
-- or Prolific, or who sign in with one-time codes.
ALTER TABLE workers ADD COLUMN password_hash TEXT;

-- Where a Prolific participant is sent when they finish (the study's completion code).
ALTER TABLE projects ADD COLUMN prolific_completion_code TEXT;

-- One-time sign-in codes a requester hands to a worker; only their SHA-256 is stored.
CREATE TABLE worker_codes (
    id BIGSERIAL PRIMARY KEY,
    code_hash TEXT NOT NULL UNIQUE,
    worker_id BIGINT NOT NULL REFERENCES workers(id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);

CREATE TABLE requesters (
    id BIGSERIAL PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- A project's qualification test: the TOML as the requester wrote it, and its questions resolved
-- to stored exemplar images (JSON). At most one per project.
CREATE TABLE qualifications (
    project_id BIGINT PRIMARY KEY REFERENCES projects(id),
    source TEXT NOT NULL,
    questions TEXT NOT NULL,
    pass_mark INTEGER NOT NULL CHECK (pass_mark >= 1),
    retry_delay_ms BIGINT NOT NULL CHECK (retry_delay_ms >= 0),
    time_limit_ms BIGINT NOT NULL CHECK (time_limit_ms > 0),
    updated_at BIGINT NOT NULL
);

CREATE TABLE qualification_attempts (
    id BIGSERIAL PRIMARY KEY,
    project_id BIGINT NOT NULL REFERENCES projects(id),
    worker_id BIGINT NOT NULL REFERENCES workers(id),
    correct INTEGER NOT NULL CHECK (correct >= 0),
    total INTEGER NOT NULL CHECK (total >= 1),
    passed BOOLEAN NOT NULL,
    answers TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX qualification_attempts_worker ON qualification_attempts (project_id, worker_id, created_at);
