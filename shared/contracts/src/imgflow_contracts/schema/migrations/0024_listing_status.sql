-- The images listing filtered by status (issue 27, listings). `GET /v1/images?status=failed`
-- (or `processing`) computed each image's status from its stages while walking the
-- tenant's images newest first: a tenant with few such images was read whole, a cost
-- linear in the tenant. The stages that are not done are few (the backlog and the
-- failures): indexed by image, the listing starts from them instead
-- (imgflow_upload_api/images/repository.py, fetch_page). A few bytes a stage not done;
-- nothing for the done ones. A plain CREATE INDEX (see 0018 for a large live table).
CREATE INDEX IF NOT EXISTS image_stages_not_done ON image_stages (image_id)
    WHERE status <> 'done';
