-- Watches and their alerts (the transactional outbox); mirrors migrations/postgres. A watch is
-- on a search (every listing the search found) or on one listing (site + external id), with a
-- threshold (`below_minor`), a drop (`drop_percent`) or both, optionally in one currency;
-- deleting a watch only stamps `deleted_at`. An alert is written in the transaction that stores
-- the price observation that fired it, once per (watch, observation), and delivered later to the
-- watch's webhook: `pending` until a 2xx (`delivered`) or until the deliverer gives up
-- (`failed`). A deliverer holds a row by `lease_owner` until `lease_until` (the database's clock,
-- epoch ms); an expired lease is taken over.
CREATE TABLE watches (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    search_id    BIGINT REFERENCES searches (id),
    site         TEXT,
    external_id  TEXT,
    below_minor  BIGINT,
    drop_percent BIGINT CHECK (drop_percent BETWEEN 1 AND 99),
    currency     TEXT,
    webhook_url  TEXT   NOT NULL,
    secret       TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    deleted_at   BIGINT,
    CHECK ((site IS NULL) = (external_id IS NULL)),
    CHECK ((search_id IS NULL) <> (site IS NULL)),
    CHECK (below_minor IS NOT NULL OR drop_percent IS NOT NULL)
);
CREATE INDEX watches_listing ON watches (site, external_id) WHERE deleted_at IS NULL;
CREATE INDEX watches_search ON watches (search_id) WHERE deleted_at IS NULL;

CREATE TABLE alerts (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    watch_id        BIGINT NOT NULL REFERENCES watches (id),
    listing_id      BIGINT NOT NULL REFERENCES listings (id),
    observation_id  BIGINT NOT NULL REFERENCES price_observations (id),
    old_price_minor BIGINT,
    old_currency    TEXT,
    new_price_minor BIGINT NOT NULL,
    currency        TEXT   NOT NULL,
    reason          TEXT   NOT NULL CHECK (reason IN ('below', 'drop')),
    created_at      BIGINT NOT NULL,
    state           TEXT   NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_owner     TEXT,
    lease_until     BIGINT,
    delivered_at    BIGINT,
    last_status     BIGINT,
    last_error      TEXT,
    UNIQUE (watch_id, observation_id)
);
CREATE INDEX alerts_due ON alerts (next_attempt_at) WHERE state = 'pending';
