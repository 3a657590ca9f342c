-- API keys of the price-tracker service: only a SHA-256 of each key is kept (the key itself is
-- shown once, at creation); `read` keys read, `write` keys also act. Revoked keys stay listed.
CREATE TABLE api_keys (
    name         TEXT   PRIMARY KEY,
    scope        TEXT   NOT NULL,
    key_hash     TEXT   NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    revoked_at   BIGINT,
    last_used_at BIGINT
);
