-- The trainer in the loop (`trainer follow`): its descriptions of each set, round by round, and
-- the per-project switch that lets accept-next hand out the sets it most wants described first.

-- Accept-next orders by exemplar_sets.priority (highest first) after "fewest assignments first".
ALTER TABLE projects ADD COLUMN order_by_priority BOOLEAN NOT NULL DEFAULT 0;
CREATE INDEX exemplar_sets_priority ON exemplar_sets (project_id, active_count, priority DESC, id);

-- What a trained model wrote for a set in a round of the trainer; one per (set, round, system).
CREATE TABLE model_descriptions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    set_id BIGINT NOT NULL REFERENCES exemplar_sets(id),
    round INTEGER NOT NULL,
    system TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (set_id, round, system)
);
