DROP TABLE qualification_attempts;
DROP TABLE qualifications;
DROP TABLE requesters;
DROP TABLE worker_codes;
ALTER TABLE projects DROP COLUMN prolific_completion_code;
ALTER TABLE workers DROP COLUMN password_hash;
