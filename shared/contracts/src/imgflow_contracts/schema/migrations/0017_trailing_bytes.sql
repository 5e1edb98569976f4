-- Bytes stored after the end of an image's data (issue 24): a motion photo's MP4 after
-- the JPEG's EOI, a newline after PNG's IEND. The original keeps them byte for byte; the
-- door measures them by walking the file's structure and records how many there are.
-- 0 when the file ends with its image, and for formats without an end (TIFF).
ALTER TABLE images ADD COLUMN trailing_bytes bigint NOT NULL DEFAULT 0
    CHECK (trailing_bytes >= 0);
