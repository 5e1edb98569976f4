-- Duplicate or similar (issue 28). Two images of one scene that are different pictures (a
-- burst frame, a crop that shares a third of the frame, a stereo view) are *similar*, not
-- duplicates: they are kept in a table of their own, so duplicate groups (built from
-- duplicate_pairs) contain only copies. Both tables keep the geometric check's evidence
-- (imgflow_deduper.overlap) and the verdict's basis in words, to show why.
ALTER TABLE duplicate_pairs DROP CONSTRAINT IF EXISTS duplicate_pairs_method_check;
ALTER TABLE duplicate_pairs ADD CONSTRAINT duplicate_pairs_method_check
    CHECK (method IN ('sha256', 'cnn', 'phash', 'cnn+phash', 'geometry'));
ALTER TABLE duplicate_pairs
    ADD COLUMN inliers   integer,  -- matches consistent with one similarity transform
    ADD COLUMN iou       real,     -- the frames' intersection over union, once aligned
    ADD COLUMN agreement real,     -- share of the shared cells whose pixels still agree
    ADD COLUMN basis     text;     -- the signals and thresholds that decided

CREATE TABLE similar_pairs (
    image_a         uuid        NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    image_b         uuid        NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    tenant_id       uuid        NOT NULL,
    cosine          real,
    view_cosine     real,
    phash_distance  smallint,
    inliers         integer     NOT NULL,
    iou             real        NOT NULL,
    agreement       real,
    basis           text        NOT NULL,
    found_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (image_a, image_b),
    CHECK (image_a < image_b)
);
CREATE INDEX similar_pairs_image_b ON similar_pairs (image_b);
CREATE INDEX similar_pairs_tenant ON similar_pairs (tenant_id);
