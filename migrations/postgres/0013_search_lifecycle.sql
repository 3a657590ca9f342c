-- A search's lifecycle: collecting -> queued -> done (every job it published settled) or failed
-- (its collection failed; `error` says why). `search_jobs` has one row per listing a search (run)
-- published a job for: `pending` until a worker settles the job as `stored`, `gone`, `failed`
-- (attempts exhausted) or `dead` (dead-lettered); whoever settles the last one marks the search
-- done. `crawl_key` names the arguments of the `crawl` that made the search (a crawl resumes only
-- its own search); `crawl_owner` (host and pid) and `crawl_alive_until` are that crawl's lease (a
-- search whose crawl stopped renewing it, or whose process died, was interrupted: resumable).
ALTER TABLE searches ADD COLUMN error TEXT;
ALTER TABLE searches ADD COLUMN finished_at BIGINT;
ALTER TABLE searches ADD COLUMN crawl_key TEXT;
ALTER TABLE searches ADD COLUMN crawl_owner TEXT;
ALTER TABLE searches ADD COLUMN crawl_alive_until BIGINT;
UPDATE searches SET status = 'queued' WHERE status = 'collected';
CREATE INDEX searches_crawl_key ON searches (crawl_key);

CREATE TABLE search_jobs (
    search_id  BIGINT NOT NULL REFERENCES searches (id),
    run        BIGINT NOT NULL,
    url        TEXT   NOT NULL,
    job_id     TEXT   NOT NULL,
    outcome    TEXT   NOT NULL,
    settled_at BIGINT,
    PRIMARY KEY (search_id, run, url)
);
CREATE INDEX search_jobs_pending ON search_jobs (search_id) WHERE outcome = 'pending';
