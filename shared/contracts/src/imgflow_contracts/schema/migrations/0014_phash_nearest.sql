-- The deduper's pHash candidates come from this index (issue 16): the K nearest images by
-- Hamming distance (pgvector's HNSW over the hash as bit(64)). The query it replaces took
-- the first K images within the distance that a sequential scan met: cheap, but in a
-- tenant of 100,000 photos about 4 in 1,000 unrelated hashes sit within 22 bits of any
-- hash, so K of those filled the list before the scan reached a near copy stored later,
-- and the copy was never a candidate. Measured on 100,000 random hashes: a copy 5 bits
-- away, stored last, missed by the old query, found by this one (about 2 ms a search).
-- The ORDER BY of repository.phash_nearest_sql must match this expression exactly.
CREATE INDEX images_phash_hnsw ON images
    USING hnsw ((phash::bit(64)) bit_hamming_ops)
    WHERE phash IS NOT NULL;
