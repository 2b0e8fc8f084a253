-- Commands carry arguments, and remember which run of the agent they were delivered to.
ALTER TABLE commands ADD COLUMN payload TEXT NOT NULL DEFAULT 'null';
ALTER TABLE commands ADD COLUMN dispatched_session TEXT;
-- Hosts report whether they are in maintenance.
ALTER TABLE hosts ADD COLUMN maintenance INTEGER NOT NULL DEFAULT 0;
