-- The site's one software deploy (USM's deploy record), from `deploy start` until it is
-- deleted: the release it deploys, the software version the site ran before, and where it
-- stands. The release itself is a row of `patches` (one repository for both views).
CREATE TABLE software_deploy (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    release_id      TEXT NOT NULL,
    from_release    TEXT NOT NULL,
    state           TEXT NOT NULL,
    reboot_required INTEGER NOT NULL,
    started_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
