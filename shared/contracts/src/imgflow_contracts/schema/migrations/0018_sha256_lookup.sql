-- Exact twins by index (issue 27). The deduper's candidate query (equal SHA-256 in the
-- tenant) and its check's earliest-twin lookup had no index on the digest: PostgreSQL
-- read every image of the tenant (images_tenant_id) and filtered on sha256, so each check
-- cost grew with the tenant (the scale bench: `make bench ARGS="--only scale"`). With this
-- index both are one index probe. About 100 bytes an image (uuid + 64 hex characters).
-- A plain CREATE INDEX: it blocks writes to images while it builds (seconds at a million
-- rows); on a larger live table create it CONCURRENTLY by hand first, under this name,
-- and the migration's IF NOT EXISTS passes over it.
CREATE INDEX IF NOT EXISTS images_tenant_sha256 ON images (tenant_id, sha256);
