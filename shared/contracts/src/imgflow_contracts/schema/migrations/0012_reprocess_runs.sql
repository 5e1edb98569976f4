-- Bulk reprocess: a run re-drives stages for every image of one tenant (or of all),
-- in batches keyset-paginated by image id. Each batch's stage resets, outbox jobs and
-- the run's cursor and counts commit together, so a restart resumes after the last
-- committed batch and never redoes one.

CREATE TABLE reprocess_runs (
    id           uuid        PRIMARY KEY,
    -- NULL: every tenant
    tenant_id    uuid        REFERENCES tenants (id) ON DELETE CASCADE,
    stages       text[]      NOT NULL CHECK (cardinality(stages) > 0),
    state        text        NOT NULL DEFAULT 'running'
                             CHECK (state IN ('running', 'paused', 'finished', 'failed')),
    -- the last image id of the last committed batch; NULL before the first
    position     uuid,
    batch_size   integer     NOT NULL CHECK (batch_size > 0),
    -- images in scope when the run started (uploads during the run may add a few)
    total        integer     NOT NULL,
    -- images whose stages were reset and re-enqueued
    done         integer     NOT NULL DEFAULT 0,
    -- images passed over because a worker was running one of the stages
    skipped      integer     NOT NULL DEFAULT 0,
    batches      integer     NOT NULL DEFAULT 0,
    failures     integer     NOT NULL DEFAULT 0,
    -- why it is paused, or why it failed
    reason       text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);
-- The drivers look for unfinished runs on every pass.
CREATE INDEX reprocess_runs_active ON reprocess_runs (created_at) WHERE state IN ('running', 'paused');
-- A tenant's run walks its images in id order.
CREATE INDEX images_tenant_id ON images (tenant_id, id);
