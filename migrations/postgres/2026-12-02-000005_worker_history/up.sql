-- A worker's submissions newest first, straight from an index: submit reads the worker's previous
-- description (a new one may not repeat it), and without this index that walked every assignment
-- the worker ever held and sorted them (docs/performance.md).
CREATE INDEX assignments_worker_submitted ON assignments (worker_id, submitted_at, id);
