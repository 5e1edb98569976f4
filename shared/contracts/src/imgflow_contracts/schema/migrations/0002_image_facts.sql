-- Facts the hasher reads from the stored bytes. From here on images.width and .height are
-- the displayed size, after the EXIF orientation (the renditions' aspect).

ALTER TABLE images
    ADD COLUMN mode            text,
    ADD COLUMN frames          integer CHECK (frames > 0),
    ADD COLUMN phash           bigint,
    ADD COLUMN dhash           bigint,
    ADD COLUMN captured_at     timestamp,
    ADD COLUMN captured_offset text CHECK (captured_offset ~ '^[+-][0-9]{2}:[0-9]{2}$'),
    ADD COLUMN camera_make     text,
    ADD COLUMN camera_model    text,
    ADD COLUMN orientation     smallint CHECK (orientation BETWEEN 1 AND 8),
    ADD COLUMN gps_latitude    double precision CHECK (gps_latitude BETWEEN -90 AND 90),
    ADD COLUMN gps_longitude   double precision CHECK (gps_longitude BETWEEN -180 AND 180),
    ADD COLUMN gps_altitude_m  double precision,
    ADD CONSTRAINT images_gps_whole CHECK ((gps_latitude IS NULL) = (gps_longitude IS NULL));

COMMENT ON COLUMN images.phash IS
    'imagehash pHash, 64 bits (row-major, most significant first) as two''s complement int64; '
    'Hamming distance: bit_count((a # b)::bit(64))';
COMMENT ON COLUMN images.dhash IS
    'imagehash dHash, 64 bits as phash; Hamming distance: bit_count((a # b)::bit(64))';
COMMENT ON COLUMN images.captured_at IS
    'EXIF capture time on the camera''s clock; no time zone unless captured_offset is set';
COMMENT ON COLUMN images.gps_latitude IS
    'EXIF GPS, stored only when the hasher runs with IMGFLOW_HASHER_KEEP_GPS=true';

-- What people filter by: a date range, a camera.
CREATE INDEX images_captured_at ON images (captured_at) WHERE captured_at IS NOT NULL;
CREATE INDEX images_camera ON images (camera_make, camera_model) WHERE camera_make IS NOT NULL;
