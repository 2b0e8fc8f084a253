-- The stage a strategy applied stage by stage stops after (1-based, as its steps' stages);
-- NULL: it applies every stage.
ALTER TABLE strategy ADD COLUMN stop_at_stage INTEGER;
