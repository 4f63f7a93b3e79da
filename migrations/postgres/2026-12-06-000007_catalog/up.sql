-- The project's Neuron Catalog (/catalog/<project>/) is the requester's alone until the requester
-- makes it public; every project, old or new, starts private.
ALTER TABLE projects ADD COLUMN catalog_public BOOLEAN NOT NULL DEFAULT FALSE;
