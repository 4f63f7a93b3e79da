ALTER TABLE projects DROP COLUMN catalog_public;
