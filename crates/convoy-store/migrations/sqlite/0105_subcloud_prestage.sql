-- A subcloud's last orchestration failure, as dcmanager's error-description (null: "No
-- errors present"), and its prestage (issue 16): dcmanager's prestage-status (null until a prestage runs,
-- then prestaging, complete or failed) and prestage-versions (`24.09,25.09`), and the request
-- of a prestage started for this subcloud alone (JSON, with the sysadmin password: this file
-- is readable by convoyd's user only), kept while it runs so that a restart resumes it.
ALTER TABLE subclouds ADD COLUMN prestage_status TEXT;
ALTER TABLE subclouds ADD COLUMN prestage_versions TEXT;
ALTER TABLE subclouds ADD COLUMN prestage_request TEXT;
ALTER TABLE subclouds ADD COLUMN error_description TEXT;
