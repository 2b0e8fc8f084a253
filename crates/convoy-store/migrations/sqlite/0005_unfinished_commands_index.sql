-- Only unfinished commands are looked up by host: index just those. The full index kept an
-- entry per command ever made, so every new or finished command dirtied a page of it per host
-- (a page of the WAL at every commit of the strategy driver); this one stays a few pages.
DROP INDEX commands_unfinished;
CREATE INDEX commands_unfinished ON commands(hostname, created_at) WHERE completed_at IS NULL;
