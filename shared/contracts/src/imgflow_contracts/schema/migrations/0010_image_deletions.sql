-- A delete in progress (DELETE /v1/images/{id}) is a durable mark, committed before the
-- image's objects are removed from S3; the row goes after them. So no transaction stays
-- open across S3 calls, and a delete cut short by S3 or PostgreSQL is never half done:
-- a marked image is hidden from clients and skipped by workers, and the API finishes
-- the deletion later (images/tasks.py) or when the client retries.
ALTER TABLE images ADD COLUMN deleting_since timestamptz;
CREATE INDEX images_deleting ON images (deleting_since) WHERE deleting_since IS NOT NULL;
