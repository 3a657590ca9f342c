-- Worker heartbeats: each worker upserts its row every few seconds (heartbeat_ms apart) with what
-- it has done since it started. A worker is alive while seen_at is within 3 heartbeats of the
-- database's clock. Times are milliseconds since the epoch on the database's clock.
CREATE TABLE workers (
    id            TEXT             PRIMARY KEY,
    host          TEXT             NOT NULL,
    concurrency   BIGINT           NOT NULL,
    pages         BIGINT           NOT NULL,
    pages_per_min DOUBLE PRECISION NOT NULL,
    memory_bytes  BIGINT,
    last_error    TEXT,
    heartbeat_ms  BIGINT           NOT NULL,
    started_at    BIGINT           NOT NULL,
    seen_at       BIGINT           NOT NULL
);

-- Roles that `scrapefarm db grant-worker` set up before this migration received every privilege
-- on this table by default. A worker only writes its own row: narrow what they got to INSERT and
-- UPDATE, and SELECT of `id`, which an upsert needs (src/store/roles.rs grants the same).
DO $$
DECLARE
    grantee_name TEXT;
BEGIN
    FOR grantee_name IN
        SELECT DISTINCT a.grantee::regrole::text
        FROM pg_class c, aclexplode(c.relacl) a
        WHERE c.relname = 'workers'
          AND c.relnamespace = current_schema()::regnamespace
          AND a.grantee <> c.relowner AND a.grantee <> 0
    LOOP
        EXECUTE format('REVOKE ALL ON workers FROM %I', grantee_name);
        EXECUTE format('GRANT INSERT, UPDATE ON workers TO %I', grantee_name);
        EXECUTE format('GRANT SELECT (id) ON workers TO %I', grantee_name);
    END LOOP;
END
$$;
