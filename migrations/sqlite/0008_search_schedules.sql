-- Recurring searches and their runs (the price-tracker API). A search may carry a schedule
-- (`every`: "6h" or a 5-field cron expression) and the time of its next run, claimed by
-- compare-and-set on next_run_at so two schedulers never start the same run twice. A deleted
-- search keeps its row and listings (soft delete). URL searches keep their URL list as JSON.
ALTER TABLE searches ADD COLUMN every TEXT;
ALTER TABLE searches ADD COLUMN next_run_at BIGINT;
ALTER TABLE searches ADD COLUMN deleted_at BIGINT;
ALTER TABLE searches ADD COLUMN urls TEXT;
CREATE INDEX searches_next_run ON searches (next_run_at);

-- One collection of a search: run 1 is the first; each later run collects the search pages again
-- and re-queues every listing found before, so price observations are keyed per run. A run is
-- claimed by a collector with a lease on the database's clock; one whose collector died is taken
-- over once its lease expires. status: collecting -> queued -> done | failed.
CREATE TABLE search_runs (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    search_id      BIGINT NOT NULL REFERENCES searches (id),
    run            BIGINT NOT NULL,
    status         TEXT   NOT NULL,
    scheduled_for  BIGINT,
    requested_at   BIGINT NOT NULL,
    started_at     BIGINT,
    finished_at    BIGINT,
    lease_owner    TEXT,
    lease_until    BIGINT,
    jobs_published BIGINT NOT NULL DEFAULT 0,
    error          TEXT,
    UNIQUE (search_id, run)
);
CREATE INDEX search_runs_status ON search_runs (status);
