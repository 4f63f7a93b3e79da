-- A project answers MTurk's entry page only when the requester put it on MTurk (Prolific's needs
-- a completion code, already a column). Projects that already bound MTurk assignments were on
-- MTurk, so an upgrade keeps their entry open.
ALTER TABLE projects ADD COLUMN mturk_enabled BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE projects SET mturk_enabled = TRUE WHERE id IN (SELECT project_id FROM mturk_assignments);
-- The qualification test's clock, kept here rather than in the page: one open attempt per
-- (project, worker), started at the first opening; reopening the test finds the same row.
CREATE TABLE qualification_openings (
    project_id BIGINT NOT NULL REFERENCES projects(id),
    worker_id BIGINT NOT NULL REFERENCES workers(id),
    started_at BIGINT NOT NULL,
    PRIMARY KEY (project_id, worker_id)
);
