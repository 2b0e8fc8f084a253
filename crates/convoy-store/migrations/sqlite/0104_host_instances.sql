-- The instances a host's InstanceAction hook lists (a JSON array of names), as its agent
-- last reported them.
ALTER TABLE hosts ADD COLUMN instances TEXT NOT NULL DEFAULT '[]';
