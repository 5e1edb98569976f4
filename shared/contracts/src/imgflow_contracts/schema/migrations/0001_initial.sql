-- Images and the state of each processing stage. Every worker write is an upsert or a
-- guarded update, so a task that runs twice leaves the same rows.

CREATE TABLE images (
    id            uuid PRIMARY KEY,
    object_key    text        NOT NULL,
    content_type  text        NOT NULL,
    byte_size     bigint      NOT NULL CHECK (byte_size > 0),
    sha256        text        NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    -- written by the hasher from the stored bytes, not trusted from the client
    format        text,
    width         integer CHECK (width > 0),
    height        integer CHECK (height > 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX images_created_at ON images (created_at DESC);

CREATE TABLE image_stages (
    image_id     uuid        NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    stage        text        NOT NULL CHECK (stage IN ('thumbnails', 'hashing', 'dedupe')),
    status       text        NOT NULL DEFAULT 'pending'
                             CHECK (status IN ('pending', 'running', 'done', 'failed')),
    attempts     integer     NOT NULL DEFAULT 0,
    error        text,
    queued_at    timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    finished_at  timestamptz,
    PRIMARY KEY (image_id, stage)
);
CREATE INDEX image_stages_unfinished ON image_stages (stage, queued_at)
    WHERE status IN ('pending', 'running');

CREATE TABLE renditions (
    image_id    uuid    NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    size        integer NOT NULL CHECK (size > 0),
    object_key  text    NOT NULL,
    format      text    NOT NULL,
    width       integer NOT NULL CHECK (width > 0),
    height      integer NOT NULL CHECK (height > 0),
    byte_size   bigint  NOT NULL CHECK (byte_size > 0),
    PRIMARY KEY (image_id, size)
);

-- Transactional outbox: written in the same transaction as the image, relayed to the
-- broker afterwards and then deleted, so an accepted upload's jobs survive a broker
-- outage. Whatever is here has not reached the broker yet.
CREATE TABLE outbox (
    id          bigserial   PRIMARY KEY,
    image_id    uuid        NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    task_name   text        NOT NULL,
    queue       text        NOT NULL,
    payload     jsonb       NOT NULL,
    -- W3C trace context of the upload, so a relayed job continues its trace
    trace_context jsonb     NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    attempts    integer     NOT NULL DEFAULT 0,
    last_error  text
);

-- The deduper's record that it examined an image (its CNN work builds on this).
CREATE TABLE duplicate_checks (
    image_id    uuid        PRIMARY KEY REFERENCES images (id) ON DELETE CASCADE,
    method      text        NOT NULL,
    -- the oldest earlier image with identical bytes, if any
    exact_duplicate_of uuid REFERENCES images (id) ON DELETE SET NULL,
    checked_at  timestamptz NOT NULL DEFAULT now()
);
