-- One person is one worker: server-side sessions that can be revoked, MTurk and Prolific entries
-- bound to the platform's own ids, work marked unverified until reconciled, bounded money and
-- durations, and bonuses that cannot be paid twice.

-- Every signed-in visitor and API client holds a session: a worker's (pages and API) or a
-- requester's (pages). Only the SHA-256 of the token is stored. A session ends at expires_at, or
-- when revoked (sign-out, the requester, a new password). `via` says what proved the identity.
CREATE TABLE sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    public_id TEXT NOT NULL UNIQUE,
    token_hash TEXT NOT NULL UNIQUE,
    worker_id BIGINT REFERENCES workers(id),
    requester_id BIGINT REFERENCES requesters(id),
    via TEXT NOT NULL CHECK (via IN ('password', 'code', 'requester', 'mturk', 'prolific')),
    entry TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT,
    CHECK ((worker_id IS NULL) <> (requester_id IS NULL))
);
CREATE INDEX sessions_worker ON sessions (worker_id);
CREATE INDEX sessions_requester ON sessions (requester_id);
CREATE INDEX sessions_expiry ON sessions (expires_at);

-- Requester API tokens get a name and can be revoked.
ALTER TABLE requester_tokens ADD COLUMN label TEXT NOT NULL DEFAULT '';
ALTER TABLE requester_tokens ADD COLUMN revoked_at BIGINT;

-- Per project: how many live leases one worker may hold at once, and the largest bonus.
ALTER TABLE projects ADD COLUMN max_live_per_worker INTEGER NOT NULL DEFAULT 1
    CHECK (max_live_per_worker BETWEEN 1 AND 100);
ALTER TABLE projects ADD COLUMN max_bonus_cents BIGINT NOT NULL DEFAULT 2000
    CHECK (max_bonus_cents BETWEEN 0 AND 1000000);

-- Money and durations are bounded so that no sum or `now + duration` can overflow: a reward of at
-- most $1,000, leases of at most 7 days, auto-approval within 30 days (MTurk's own maximum).
UPDATE projects SET reward_cents = 100000 WHERE reward_cents > 100000;
UPDATE projects SET lease_ms = 604800000 WHERE lease_ms > 604800000;
UPDATE projects SET auto_approve_ms = 2592000000 WHERE auto_approve_ms > 2592000000;
CREATE TRIGGER projects_bounded_insert BEFORE INSERT ON projects
WHEN NEW.reward_cents > 100000 OR NEW.lease_ms > 604800000 OR NEW.auto_approve_ms > 2592000000
BEGIN SELECT RAISE(ABORT, 'project settings out of bounds'); END;
CREATE TRIGGER projects_bounded_update BEFORE UPDATE ON projects
WHEN NEW.reward_cents > 100000 OR NEW.lease_ms > 604800000 OR NEW.auto_approve_ms > 2592000000
BEGIN SELECT RAISE(ABORT, 'project settings out of bounds'); END;

-- A bonus carries the requester's idempotency key: the same key never pays twice. One payment is
-- at most $10,000.
ALTER TABLE ledger ADD COLUMN idempotency_key TEXT;
ALTER TABLE ledger ADD COLUMN request_hash TEXT;
CREATE UNIQUE INDEX ledger_idempotency ON ledger (idempotency_key);
CREATE TRIGGER ledger_bounded BEFORE INSERT ON ledger
WHEN NEW.cents > 1000000
BEGIN SELECT RAISE(ABORT, 'ledger amount out of bounds'); END;

-- FALSE while the worker's identity rests on URL parameters (MTurk, Prolific) that the requester
-- has not reconciled with the platform's records; such work is never approved automatically.
-- Work accepted before this migration keeps TRUE: it predates reconciliation.
ALTER TABLE assignments ADD COLUMN verified BOOLEAN NOT NULL DEFAULT 1;

-- An MTurk assignment (the HIT a worker accepted on MTurk) is bound to exactly one assignment here,
-- and one MTurk worker does one assignment per HIT, as on MTurk itself. Reconciliation with the
-- batch results MTurk gives the requester stamps reconciled_at, and flag says what did not match.
CREATE TABLE mturk_assignments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id BIGINT NOT NULL REFERENCES projects(id),
    mturk_assignment_id TEXT NOT NULL UNIQUE,
    hit_id TEXT NOT NULL,
    worker_id BIGINT NOT NULL REFERENCES workers(id),
    assignment_id BIGINT NOT NULL UNIQUE REFERENCES assignments(id),
    submit_to TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    reconciled_at BIGINT,
    flag TEXT,
    UNIQUE (hit_id, worker_id)
);
CREATE INDEX mturk_assignments_project ON mturk_assignments (project_id);

-- A Prolific participant takes part in a study once: one session id per (study, participant),
-- completed at most once.
CREATE TABLE prolific_sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id BIGINT NOT NULL REFERENCES projects(id),
    study_id TEXT NOT NULL,
    session_id TEXT NOT NULL UNIQUE,
    worker_id BIGINT NOT NULL REFERENCES workers(id),
    created_at BIGINT NOT NULL,
    completed_at BIGINT,
    reconciled_at BIGINT,
    flag TEXT,
    UNIQUE (study_id, worker_id)
);
CREATE INDEX prolific_sessions_project ON prolific_sessions (project_id);
