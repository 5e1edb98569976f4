-- The deduper's CNN embeddings (pgvector) and the duplicate pairs it finds.

CREATE EXTENSION IF NOT EXISTS vector;

-- One embedding per image. The column is untyped `vector` because its size depends on
-- the model (IMGFLOW_DEDUPE_MODEL_NAME keys it); each model gets a partial HNSW index
-- on its own size, so embeddings of different models are never compared.
-- Tenants: none exist yet, so every image is in the nil tenant. Searches already filter
-- on tenant_id (pgvector 0.8's iterative index scans keep such filtered searches exact
-- enough); when images gain a tenant, the deduper copies it here.
CREATE TABLE image_embeddings (
    image_id    uuid        PRIMARY KEY REFERENCES images (id) ON DELETE CASCADE,
    tenant_id   uuid        NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000',
    model       text        NOT NULL,
    embedding   vector      NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- HNSW, cosine distance, for the default model (EfficientNet-Lite0, 1280 dims); m and
-- ef_construction are pgvector's defaults, measured by `make bench` (suite embeddings).
-- Another model needs its own index, e.g. for a 512-dim CLIP tower named clip-b32:
--   CREATE INDEX CONCURRENTLY ON image_embeddings
--     USING hnsw ((embedding::vector(512)) vector_cosine_ops) WHERE model = 'clip-b32';
-- (without it, its searches are exact scans: correct, but linear in the image count).
CREATE INDEX image_embeddings_efficientnet_lite0_hnsw ON image_embeddings
    USING hnsw ((embedding::vector(1280)) vector_cosine_ops) WITH (m = 16, ef_construction = 64)
    WHERE model = 'efficientnet-lite0';

-- Embeddings of five 80 % crops of each image (centre and corners), so that a cropped
-- copy is recognised: a pair's view similarity is the best of each one's whole frame
-- against the other's crops. Read only for candidates the searches found, by image id,
-- so they need no vector index.
CREATE TABLE image_view_embeddings (
    image_id    uuid        NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    view        smallint    NOT NULL CHECK (view >= 1),
    model       text        NOT NULL,
    embedding   vector      NOT NULL,
    PRIMARY KEY (image_id, view)
);

-- A pair of images judged duplicates, stored once (image_a < image_b), with the signal
-- that decided it and the similarity; groups are the connected components of pairs.
CREATE TABLE duplicate_pairs (
    image_a         uuid        NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    image_b         uuid        NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    tenant_id       uuid        NOT NULL DEFAULT '00000000-0000-0000-0000-000000000000',
    method          text        NOT NULL CHECK (method IN ('sha256', 'cnn', 'phash', 'cnn+phash')),
    score           real        NOT NULL CHECK (score >= 0 AND score <= 1),
    -- the signals as measured, so a pair can be re-judged when thresholds change
    cosine          real,
    view_cosine     real,
    phash_distance  smallint,
    found_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (image_a, image_b),
    CHECK (image_a < image_b)
);
CREATE INDEX duplicate_pairs_image_b ON duplicate_pairs (image_b);

-- Set when an image was checked before its own pHash existed (hashing and dedupe run in
-- parallel): its pHash search is done again once the hash arrives (see the deduper).
ALTER TABLE duplicate_checks ADD COLUMN phash_pending boolean NOT NULL DEFAULT false;
CREATE INDEX duplicate_checks_phash_pending ON duplicate_checks (checked_at) WHERE phash_pending;
