-- Worker heartbeats: each worker upserts its row every few seconds (heartbeat_ms apart) with what
-- it has done since it started. A worker is alive while seen_at is within 3 heartbeats of the
-- database's clock. Times are milliseconds since the epoch on the database's clock.
CREATE TABLE workers (
    id            TEXT             PRIMARY KEY,
    host          TEXT             NOT NULL,
    concurrency   BIGINT           NOT NULL,
    pages         BIGINT           NOT NULL,
    pages_per_min REAL             NOT NULL,
    memory_bytes  BIGINT,
    last_error    TEXT,
    heartbeat_ms  BIGINT           NOT NULL,
    started_at    BIGINT           NOT NULL,
    seen_at       BIGINT           NOT NULL
);
