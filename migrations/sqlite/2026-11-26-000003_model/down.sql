DROP TABLE model_descriptions;
DROP INDEX exemplar_sets_priority;
ALTER TABLE projects DROP COLUMN order_by_priority;
