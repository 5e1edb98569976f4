-- Completion without polling: every change of a stage, and an image's creation, outcome
-- and deletion, becomes a row in image_events and a NOTIFY on channel `image_events`,
-- written by triggers inside the writer's own transaction. Workers need no change; a
-- rolled-back transaction announces nothing; the NOTIFY is sent at commit.

CREATE TABLE image_events (
    id          bigserial   PRIMARY KEY,
    -- no foreign keys: the events of a deleted image stay readable until pruned
    tenant_id   uuid        NOT NULL,
    image_id    uuid        NOT NULL,
    -- image.created, image.ready, image.failed, image.deleted, stage.<status>
    type        text        NOT NULL,
    stage       text,
    status      text        NOT NULL,
    error       text,
    at          timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX image_events_tenant ON image_events (tenant_id, id);
CREATE INDEX image_events_image ON image_events (image_id, id);
CREATE INDEX image_events_at ON image_events (at);

-- The outcome last announced for an image whose stages are all terminal, so that each
-- change of outcome is announced exactly once (and again after a reprocess).
CREATE TABLE image_outcomes (
    image_id    uuid        PRIMARY KEY REFERENCES images (id) ON DELETE CASCADE,
    status      text        NOT NULL CHECK (status IN ('ready', 'failed'))
);

CREATE TABLE webhooks (
    id          uuid        PRIMARY KEY,
    tenant_id   uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    url         text        NOT NULL CHECK (url ~ '^https?://'),
    -- event types or patterns: image.ready, stage.*, *
    events      text[]      NOT NULL CHECK (cardinality(events) > 0),
    -- kept in clear: it signs every delivery (shown to the tenant once, at creation)
    secret      text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhooks_tenant ON webhooks (tenant_id);

-- Deliveries are written in the same transaction as their event, so none is lost; the
-- API's dispatcher claims due rows with FOR UPDATE SKIP LOCKED, so replicas share them.
CREATE TABLE webhook_deliveries (
    id               uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    webhook_id       uuid        NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id         bigint      NOT NULL,
    type             text        NOT NULL,
    payload          jsonb       NOT NULL,
    status           text        NOT NULL DEFAULT 'pending'
                                 CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         integer     NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_status_code integer,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, created_at DESC);
CREATE INDEX webhook_deliveries_finished ON webhook_deliveries (finished_at)
    WHERE finished_at IS NOT NULL;

-- Does an event type match a webhook's patterns (exact, `prefix.*`, or `*`)?
CREATE FUNCTION imgflow_event_matches(patterns text[], event_type text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT EXISTS (
        SELECT 1 FROM unnest(patterns) AS p
         WHERE p = event_type OR p = '*'
            OR (p LIKE '%.*' AND starts_with(event_type, left(p, -1)))
    )
$$;

-- Record one event, announce it, and queue a delivery to every webhook that wants it
-- (then wake the dispatchers on channel `webhook_deliveries`; NOTIFYs repeated in one
-- transaction are sent once). The event's NOTIFY payload stays far below PostgreSQL's
-- 8000-byte limit: the error is cut to 500 characters (the stage row keeps it whole).
CREATE FUNCTION imgflow_emit_event(
    p_tenant uuid, p_image uuid, p_type text, p_stage text, p_status text, p_error text
) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    ev image_events;
    body jsonb;
    queued integer;
BEGIN
    INSERT INTO image_events (tenant_id, image_id, type, stage, status, error)
    VALUES (p_tenant, p_image, p_type, p_stage, p_status, left(p_error, 500))
    RETURNING * INTO ev;
    body := jsonb_build_object(
        'id', ev.id, 'type', ev.type, 'tenant_id', ev.tenant_id, 'image_id', ev.image_id,
        'stage', ev.stage, 'status', ev.status, 'error', ev.error, 'at', ev.at);
    PERFORM pg_notify('image_events', body::text);
    INSERT INTO webhook_deliveries (webhook_id, event_id, type, payload)
    SELECT w.id, ev.id, ev.type, body
      FROM webhooks AS w
     WHERE w.tenant_id = p_tenant AND imgflow_event_matches(w.events, ev.type);
    GET DIAGNOSTICS queued = ROW_COUNT;
    IF queued > 0 THEN
        PERFORM pg_notify('webhook_deliveries', '');
    END IF;
END
$$;

-- Serialise one image's events: ids are then in commit order per image (what the
-- per-image stream relies on), and "every stage is terminal" is decided once.
CREATE FUNCTION imgflow_lock_image_events(p_image uuid) RETURNS void
LANGUAGE sql AS $$
    SELECT pg_advisory_xact_lock(hashtextextended(p_image::text, 2026))
$$;

CREATE FUNCTION imgflow_stage_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_tenant uuid;
    v_total integer;
    v_terminal integer;
    v_failed integer;
    v_outcome text;
BEGIN
    SELECT tenant_id INTO v_tenant FROM images WHERE id = NEW.image_id;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    PERFORM imgflow_lock_image_events(NEW.image_id);
    PERFORM imgflow_emit_event(v_tenant, NEW.image_id, 'stage.' || NEW.status, NEW.stage,
                               NEW.status, NEW.error);
    SELECT count(*),
           count(*) FILTER (WHERE status IN ('done', 'failed')),
           count(*) FILTER (WHERE status = 'failed')
      INTO v_total, v_terminal, v_failed
      FROM image_stages WHERE image_id = NEW.image_id;
    IF v_terminal < v_total THEN
        DELETE FROM image_outcomes WHERE image_id = NEW.image_id;
        RETURN NULL;
    END IF;
    v_outcome := CASE WHEN v_failed > 0 THEN 'failed' ELSE 'ready' END;
    INSERT INTO image_outcomes (image_id, status) VALUES (NEW.image_id, v_outcome)
        ON CONFLICT (image_id) DO UPDATE SET status = EXCLUDED.status
        WHERE image_outcomes.status <> EXCLUDED.status
    RETURNING status INTO v_outcome;
    IF FOUND THEN
        PERFORM imgflow_emit_event(v_tenant, NEW.image_id, 'image.' || v_outcome, NULL,
                                   v_outcome, NULL);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER image_stages_inserted_event AFTER INSERT ON image_stages
    FOR EACH ROW EXECUTE FUNCTION imgflow_stage_changed();
CREATE TRIGGER image_stages_status_event AFTER UPDATE OF status ON image_stages
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION imgflow_stage_changed();

CREATE FUNCTION imgflow_image_created_or_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM imgflow_lock_image_events(NEW.id);
        PERFORM imgflow_emit_event(NEW.tenant_id, NEW.id, 'image.created', NULL,
                                   'processing', NULL);
    ELSE
        PERFORM imgflow_lock_image_events(OLD.id);
        PERFORM imgflow_emit_event(OLD.tenant_id, OLD.id, 'image.deleted', NULL,
                                   'deleted', NULL);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER images_created_event AFTER INSERT ON images
    FOR EACH ROW EXECUTE FUNCTION imgflow_image_created_or_deleted();
CREATE TRIGGER images_deleted_event AFTER DELETE ON images
    FOR EACH ROW EXECUTE FUNCTION imgflow_image_created_or_deleted();
