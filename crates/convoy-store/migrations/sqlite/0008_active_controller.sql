-- Which controller of the site is active (one row at most); a swact changes it.
CREATE TABLE active_controller (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    hostname TEXT NOT NULL
);
