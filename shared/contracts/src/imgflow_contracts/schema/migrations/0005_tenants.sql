-- Tenants, their API keys, content-addressed originals and idempotent uploads.

CREATE TABLE tenants (
    id          uuid        PRIMARY KEY,
    name        text        NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,62}$'),
    created_at  timestamptz NOT NULL DEFAULT now()
);
-- Owns every image uploaded before tenants existed (the nil id the deduper already used),
-- and is the tenant `make run` gives its development key to.
INSERT INTO tenants (id, name) VALUES ('00000000-0000-0000-0000-000000000000', 'default');

-- Keys are 256 random bits, so a plain SHA-256 is enough to store them (a slow password
-- hash defends low-entropy secrets, and would cost milliseconds on every request).
CREATE TABLE api_keys (
    id          uuid        PRIMARY KEY,
    tenant_id   uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    key_sha256  bytea       NOT NULL UNIQUE CHECK (length(key_sha256) = 32),
    -- the key's first characters, so an operator can tell keys apart without the secret
    prefix      text        NOT NULL,
    label       text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

ALTER TABLE images
    ADD COLUMN tenant_id uuid NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000'
        REFERENCES tenants (id);
ALTER TABLE images ALTER COLUMN tenant_id DROP DEFAULT;
-- Listing: newest first within a tenant, with the id as the tie-breaker of the cursor.
CREATE INDEX images_tenant_created ON images (tenant_id, created_at DESC, id DESC);
-- New originals are stored under a key derived from the tenant and the SHA-256 of their
-- bytes, so this makes identical bytes from one tenant one image (older originals keep
-- their per-image keys, which were unique already).
ALTER TABLE images ADD CONSTRAINT images_object_key_unique UNIQUE (object_key);

-- A retried upload with the same Idempotency-Key answers with the image of the first.
CREATE TABLE idempotency_keys (
    tenant_id   uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    key         text        NOT NULL,
    -- the body's SHA-256: the same key with other bytes is the client's mistake (422)
    sha256      text        NOT NULL,
    image_id    uuid        NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    -- what the first request answered: 201 (created) or 200 (identical bytes existed)
    status      smallint    NOT NULL CHECK (status IN (200, 201)),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
