-- Embedded queue leases are owned and expire: a lease names its consumer (host:pid:random) and
-- holds until leased_until (the database's clock, ms since the epoch), renewed while the job runs;
-- only an expired lease is taken over. deliveries counts claims since the last publish or retry
-- (more than one = a redelivery). queue_consumers lists live consumers for `status`.
UPDATE queue_jobs SET state = 'ready', leased_until = NULL WHERE state = 'leased';
ALTER TABLE queue_jobs ADD COLUMN lease_owner TEXT;
ALTER TABLE queue_jobs ADD COLUMN deliveries BIGINT NOT NULL DEFAULT 0;
CREATE INDEX queue_jobs_lease_owner ON queue_jobs (lease_owner) WHERE lease_owner IS NOT NULL;
CREATE TABLE queue_consumers (
    id          TEXT   PRIMARY KEY,
    queue       TEXT   NOT NULL,
    alive_until BIGINT NOT NULL
);
