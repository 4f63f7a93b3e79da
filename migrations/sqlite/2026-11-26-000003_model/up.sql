-- The trainer in the loop (`trainer follow`): its descriptions of each set, round by round, and
-- the per-project switch that lets accept-next hand out the sets it most wants described first.

-- With it on, accept-next hands out the sets of highest exemplar_sets.priority first (then fewest
-- assignments, then oldest), so the sets the trainer wants most are completed first.
ALTER TABLE projects ADD COLUMN order_by_priority BOOLEAN NOT NULL DEFAULT 0;
CREATE INDEX exemplar_sets_priority ON exemplar_sets (project_id, priority DESC, active_count, id);

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
