-- Per-site pacing shared by every worker: a 429 anywhere slows the whole site down.
CREATE TABLE site_pace (
    site         TEXT   PRIMARY KEY,
    paused_until BIGINT NOT NULL,
    rate_milli   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
