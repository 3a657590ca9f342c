-- The dashboard (`/ui`): sign-in sessions, and the indexes its listings table pages through.
-- A session is kept by the SHA-256 of its cookie token (a leaked table gives no usable cookie)
-- with the hash of the API key it was opened with, so revoking the key ends the session; `csrf`
-- is the token every form of the session posts back. Times are epoch ms on the database's clock.
CREATE TABLE ui_sessions (
    token_hash TEXT   PRIMARY KEY,
    key_hash   TEXT   NOT NULL,
    csrf       TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX ui_sessions_expires ON ui_sessions (expires_at);

-- Keyset pagination of the listings table: each sort order is (key, id), filtered by site or
-- status with the same order, so a page is an index range scan however deep it is.
CREATE INDEX listings_price_id ON listings (price_minor, id);
CREATE INDEX listings_enriched_id ON listings (last_enriched, id);
CREATE INDEX listings_site_id ON listings (site, id);
CREATE INDEX listings_status_id ON listings (status, id);
CREATE INDEX listings_site_price_id ON listings (site, price_minor, id);
-- A listing's first and previous observation (price change columns) and its history chart.
CREATE INDEX price_observations_listing_time ON price_observations (listing_id, observed_at, id);
-- Which listings a search found, from the listing's side.
CREATE INDEX search_hits_listing ON search_hits (listing_id, search_id);

-- (PostgreSQL's twin also revokes this table from worker roles; SQLite has no roles.)
