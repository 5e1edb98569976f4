-- Jobs that could not be completed: retries exhausted, time limit passed, or a message
-- that never parsed. Open until an operator replays them (imgflow-admin, admin API), or
-- until a late delivery of the same job completes the stage after all.

CREATE TABLE dead_letters (
    id           bigserial   PRIMARY KEY,
    -- NULL for a poison message that names no image we know
    image_id     uuid        REFERENCES images (id) ON DELETE CASCADE,
    stage        text,
    task_name    text        NOT NULL,
    queue        text        NOT NULL,
    payload      jsonb       NOT NULL,
    reason       text        NOT NULL,
    attempts     integer     NOT NULL DEFAULT 0,
    failed_at    timestamptz NOT NULL DEFAULT now(),
    resolved_at  timestamptz,
    resolution   text CHECK (resolution IN ('replayed', 'completed'))
);
-- A redelivered job that fails again updates its open dead letter instead of adding one.
CREATE UNIQUE INDEX dead_letters_one_open_per_stage ON dead_letters (image_id, stage)
    WHERE resolved_at IS NULL AND image_id IS NOT NULL;
CREATE INDEX dead_letters_open ON dead_letters (failed_at) WHERE resolved_at IS NULL;

-- How often the sweeper re-enqueued a stage that no worker finished in time.
ALTER TABLE image_stages ADD COLUMN sweeps integer NOT NULL DEFAULT 0;

CREATE INDEX outbox_image ON outbox (image_id);
