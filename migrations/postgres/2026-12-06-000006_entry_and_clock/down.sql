DROP TABLE qualification_openings;
ALTER TABLE projects DROP COLUMN mturk_enabled;
