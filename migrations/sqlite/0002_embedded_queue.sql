-- The embedded queue: jobs persisted in the same database as the rows, so a killed `crawl`
-- resumes where it stopped. state: ready (available_at in the future = retrying), leased, dead.
CREATE TABLE queue_jobs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    queue        TEXT    NOT NULL,
    body         BLOB    NOT NULL,
    attempt      BIGINT  NOT NULL,
    state        TEXT    NOT NULL,
    available_at BIGINT  NOT NULL,
    leased_until BIGINT,
    reason       TEXT,
    created_at   BIGINT  NOT NULL
);
CREATE INDEX queue_jobs_claim ON queue_jobs (queue, state, available_at, id);
