-- Presigned uploads (POST /v1/uploads): the client sends the bytes straight to S3 under a
-- staging key; POST /v1/uploads/{id}/complete verifies them and records a normal image.

CREATE TABLE uploads (
    id                  uuid        PRIMARY KEY,
    tenant_id           uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    staging_key         text        NOT NULL UNIQUE,
    -- what the client declared; the stored bytes must match it
    byte_size           bigint      NOT NULL CHECK (byte_size > 0),
    sha256              text        NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    content_type        text,
    -- set for S3 multipart uploads (part URLs), null for a single presigned PUT
    multipart_upload_id text,
    part_size           bigint      CHECK (part_size > 0),
    state               text        NOT NULL DEFAULT 'pending'
                                    CHECK (state IN ('pending', 'completed', 'failed', 'expired')),
    -- a completion verifying the bytes holds this lease, so a concurrent one waits and
    -- a crashed one is retried once it lapses
    verifying_until     timestamptz,
    -- why it failed (the problem code the completion answered)
    error_code          text,
    image_id            uuid        REFERENCES images (id) ON DELETE SET NULL,
    -- what the completion answered: 201 (created) or 200 (identical bytes existed)
    outcome_status      smallint    CHECK (outcome_status IN (200, 201)),
    created_at          timestamptz NOT NULL DEFAULT now(),
    expires_at          timestamptz NOT NULL,
    -- once expired, the staged object and any unfinished multipart upload are removed
    -- (whatever the state: a presigned URL can still be used until it expires)
    cleaned_at          timestamptz
);
CREATE INDEX uploads_to_clean ON uploads (expires_at) WHERE cleaned_at IS NULL;
CREATE INDEX uploads_cleaned ON uploads (cleaned_at) WHERE cleaned_at IS NOT NULL;
