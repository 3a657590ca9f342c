-- One browser per profile across pods: a worker holds its profile's row while it runs, renewing
-- lease_until (the database's clock, milliseconds since the epoch) with a heartbeat. A claim
-- succeeds when the row is free, expired, or already this host's.
CREATE TABLE profile_leases (
    profile      TEXT   PRIMARY KEY,
    owner        TEXT   NOT NULL,
    host         TEXT   NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    lease_until  BIGINT NOT NULL
);
