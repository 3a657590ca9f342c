-- A price observation is counted once per (listing, search), or for jobs of no search once per
-- price and hour: a job published again after a crash (new job id) adds no second observation.
ALTER TABLE price_observations ADD COLUMN observation_key TEXT;
UPDATE price_observations SET observation_key = 'job:' || job_id;
ALTER TABLE price_observations ALTER COLUMN observation_key SET NOT NULL;
CREATE UNIQUE INDEX price_observations_key ON price_observations (listing_id, observation_key);

-- Renders of a job's attempt that were started and never finished (the worker died or hung
-- holding it): after a few the job is dead-lettered, so a page that kills its worker cannot loop
-- for ever. Jobs that were only prefetched beside it when the worker died are not counted.
CREATE TABLE job_renders (
    job_id  TEXT    NOT NULL,
    attempt BIGINT  NOT NULL,
    starts  BIGINT  NOT NULL,
    PRIMARY KEY (job_id, attempt)
);
