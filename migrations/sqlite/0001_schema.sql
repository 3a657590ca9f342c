-- scrapefarm schema (SQLite; mirrors migrations/postgres). Times are epoch milliseconds (BIGINT) and JSON is TEXT so that the
-- same queries run on SQLite through sqlx's Any driver; money is integer minor units + ISO code.
CREATE TABLE searches (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    site           TEXT   NOT NULL,
    query          TEXT   NOT NULL,
    max_pages      BIGINT NOT NULL,
    requested_at   BIGINT NOT NULL,
    status         TEXT   NOT NULL,
    listings_found BIGINT NOT NULL DEFAULT 0,
    jobs_published BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE listings (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    site          TEXT   NOT NULL,
    external_id   TEXT   NOT NULL,
    url           TEXT   NOT NULL,
    title         TEXT,
    price_minor   BIGINT,
    currency      TEXT,
    condition     TEXT,
    seller        TEXT,
    seller_score  BIGINT,
    shipping      TEXT,
    location      TEXT,
    specifics     TEXT   NOT NULL DEFAULT '{}',
    description   TEXT,
    images        TEXT   NOT NULL DEFAULT '[]',
    status        TEXT   NOT NULL,
    first_seen    BIGINT NOT NULL,
    last_enriched BIGINT,
    attempts      BIGINT NOT NULL DEFAULT 0,
    last_error    TEXT,
    UNIQUE (site, external_id)
);
CREATE INDEX listings_status ON listings (status);

CREATE TABLE search_hits (
    search_id  BIGINT NOT NULL REFERENCES searches (id),
    listing_id BIGINT NOT NULL REFERENCES listings (id),
    rank       BIGINT NOT NULL,
    page       BIGINT NOT NULL,
    PRIMARY KEY (search_id, listing_id)
);

CREATE TABLE price_observations (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    listing_id  BIGINT NOT NULL REFERENCES listings (id),
    job_id      TEXT   NOT NULL,
    observed_at BIGINT NOT NULL,
    price_minor BIGINT NOT NULL,
    currency    TEXT   NOT NULL,
    UNIQUE (listing_id, job_id)
);

CREATE TABLE snapshots (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    listing_id      BIGINT NOT NULL REFERENCES listings (id),
    path            TEXT   NOT NULL UNIQUE,
    sha256          TEXT   NOT NULL,
    bytes           BIGINT NOT NULL,
    html_bytes      BIGINT NOT NULL,
    http_status     BIGINT,
    captured_at     BIGINT NOT NULL,
    screenshot_path TEXT
);
CREATE INDEX snapshots_listing ON snapshots (listing_id);

CREATE TABLE attempts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    listing_id  BIGINT NOT NULL REFERENCES listings (id),
    job_id      TEXT   NOT NULL,
    attempt     BIGINT NOT NULL,
    worker      TEXT   NOT NULL,
    outcome     TEXT   NOT NULL,
    detail      TEXT,
    duration_ms BIGINT NOT NULL,
    at          BIGINT NOT NULL,
    UNIQUE (job_id, attempt, listing_id)
);
CREATE INDEX attempts_at ON attempts (at);
