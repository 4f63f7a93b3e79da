-- The annotator's core schema (PostgreSQL). Times are Unix milliseconds (BIGINT) on both backends.

CREATE TABLE projects (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    instructions TEXT NOT NULL,
    reward_cents BIGINT NOT NULL CHECK (reward_cents >= 0),
    assignments_per_set INTEGER NOT NULL CHECK (assignments_per_set BETWEEN 1 AND 20),
    lease_ms BIGINT NOT NULL CHECK (lease_ms > 0),
    auto_approve_ms BIGINT NOT NULL CHECK (auto_approve_ms >= 0),
    qualification_required BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL
);

CREATE TABLE exemplar_sets (
    id BIGSERIAL PRIMARY KEY,
    project_id BIGINT NOT NULL REFERENCES projects(id),
    model TEXT NOT NULL,
    layer TEXT NOT NULL,
    unit INTEGER NOT NULL CHECK (unit >= 0),
    exemplars TEXT NOT NULL,
    active_count INTEGER NOT NULL DEFAULT 0,
    approved_count INTEGER NOT NULL DEFAULT 0,
    priority DOUBLE PRECISION NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    UNIQUE (project_id, model, layer, unit)
);
CREATE INDEX exemplar_sets_next ON exemplar_sets (project_id, active_count, id);

-- One row per place a set has for an assignment: a set has exactly assignments_per_set slots, and
-- the partial unique index on assignments lets one live, submitted or approved assignment hold
-- each. Together they make "at most N per set" a property of the database.
CREATE TABLE slots (
    set_id BIGINT NOT NULL REFERENCES exemplar_sets(id),
    slot INTEGER NOT NULL,
    PRIMARY KEY (set_id, slot)
);

CREATE TABLE workers (
    id BIGSERIAL PRIMARY KEY,
    external_id TEXT NOT NULL UNIQUE,
    blocked BOOLEAN NOT NULL DEFAULT FALSE,
    block_reason TEXT,
    created_at BIGINT NOT NULL
);

CREATE TABLE assignments (
    id BIGSERIAL PRIMARY KEY,
    public_id TEXT NOT NULL UNIQUE,
    set_id BIGINT NOT NULL,
    slot INTEGER NOT NULL,
    worker_id BIGINT NOT NULL REFERENCES workers(id),
    state TEXT NOT NULL CHECK (state IN ('accepted', 'submitted', 'approved', 'rejected', 'returned', 'abandoned')),
    accepted_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    submitted_at BIGINT,
    reviewed_at BIGINT,
    ended_at BIGINT,
    feedback TEXT,
    idempotency_key TEXT,
    request_hash TEXT,
    submit_response TEXT,
    FOREIGN KEY (set_id, slot) REFERENCES slots(set_id, slot),
    UNIQUE (set_id, worker_id)
);
CREATE UNIQUE INDEX assignments_one_per_slot ON assignments (set_id, slot)
    WHERE state IN ('accepted', 'submitted', 'approved');
CREATE INDEX assignments_expiry ON assignments (state, expires_at);
CREATE INDEX assignments_review ON assignments (state, submitted_at);
CREATE INDEX assignments_worker ON assignments (worker_id);

CREATE TABLE descriptions (
    id BIGSERIAL PRIMARY KEY,
    assignment_id BIGINT NOT NULL UNIQUE REFERENCES assignments(id),
    set_id BIGINT NOT NULL REFERENCES exemplar_sets(id),
    raw TEXT NOT NULL,
    cleaned TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX descriptions_set ON descriptions (set_id);

CREATE TABLE ledger (
    id BIGSERIAL PRIMARY KEY,
    worker_id BIGINT NOT NULL REFERENCES workers(id),
    assignment_id BIGINT REFERENCES assignments(id),
    kind TEXT NOT NULL CHECK (kind IN ('reward', 'bonus')),
    cents BIGINT NOT NULL CHECK (cents > 0),
    note TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX ledger_one_reward ON ledger (assignment_id) WHERE kind = 'reward';

-- Append-only: rows are inserted, never updated or deleted.
CREATE TABLE events (
    id BIGSERIAL PRIMARY KEY,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    project_id BIGINT,
    set_id BIGINT,
    assignment_id BIGINT,
    worker_id BIGINT,
    detail TEXT NOT NULL
);
CREATE FUNCTION events_append_only() RETURNS trigger AS $$
BEGIN RAISE EXCEPTION 'events are append-only'; END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
FOR EACH ROW EXECUTE FUNCTION events_append_only();

CREATE TABLE requester_tokens (
    id BIGSERIAL PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

CREATE TABLE settings (
    name TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
