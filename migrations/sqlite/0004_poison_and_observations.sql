-- A price observation is counted once per (listing, search), or for jobs of no search once per
-- price and hour: a job published again after a crash (new job id) adds no second observation.
ALTER TABLE price_observations ADD COLUMN observation_key TEXT;
UPDATE price_observations SET observation_key = 'job:' || job_id;
CREATE UNIQUE INDEX price_observations_key ON price_observations (listing_id, observation_key);

-- Deliveries of a job that came back unsettled (its worker died holding it, or gave it back):
-- after a few the job is dead-lettered, so a page that kills its worker cannot loop for ever.
CREATE TABLE job_deliveries (
    job_id       TEXT    PRIMARY KEY,
    redeliveries INTEGER NOT NULL,
    last_at      INTEGER NOT NULL
);
