-- Fair scheduling (issue 30): the backlog waits in the outbox, where the relay picks
-- what to publish next by kind of work (new uploads before bulk work) and, within a
-- kind, by tenant in weighted turns; the broker's queues stay a few jobs deep.
--
-- Each outbox row names its tenant and its kind. The tenant is filled in from the image
-- by a trigger, so every path that enqueues (uploads, the sweeper, replays, reprocess
-- runs) is covered without each having to say it.
ALTER TABLE outbox
    ADD COLUMN tenant_id uuid,
    ADD COLUMN kind text NOT NULL DEFAULT 'upload' CHECK (kind IN ('upload', 'bulk'));
UPDATE outbox AS o SET tenant_id = i.tenant_id FROM images AS i WHERE i.id = o.image_id;
ALTER TABLE outbox ALTER COLUMN tenant_id SET NOT NULL;

CREATE FUNCTION imgflow_outbox_tenant() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.tenant_id IS NULL THEN
        SELECT i.tenant_id INTO NEW.tenant_id FROM images AS i WHERE i.id = NEW.image_id;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER outbox_tenant BEFORE INSERT ON outbox
    FOR EACH ROW EXECUTE FUNCTION imgflow_outbox_tenant();

-- The relay's pick: the oldest rows of each (queue, kind, tenant); and the per-tenant
-- counts that backpressure and the usage endpoint read.
CREATE INDEX outbox_fair ON outbox (queue, kind, tenant_id, id);
CREATE INDEX outbox_tenant ON outbox (tenant_id);

-- Per-tenant limits; NULL: the deployment's default (settings), which may be unlimited.
CREATE TABLE tenant_limits (
    tenant_id            uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    -- the tenant's share of the workers while others also wait (weighted turns)
    weight               integer CHECK (weight BETWEEN 1 AND 1000),
    upload_rate_per_s    double precision CHECK (upload_rate_per_s > 0),
    upload_burst         integer CHECK (upload_burst > 0),
    upload_concurrency   integer CHECK (upload_concurrency > 0),
    max_queued_jobs      integer CHECK (max_queued_jobs > 0),
    max_images           bigint CHECK (max_images >= 0),
    max_bytes            bigint CHECK (max_bytes >= 0),
    updated_at           timestamptz NOT NULL DEFAULT now()
);

-- What each tenant stores, kept by triggers so a quota check is one primary-key read
-- (counting a million-image tenant's rows on every upload would not be).
CREATE TABLE tenant_usage (
    tenant_id  uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    images     bigint NOT NULL DEFAULT 0,
    bytes      bigint NOT NULL DEFAULT 0
);
INSERT INTO tenant_usage (tenant_id, images, bytes)
SELECT tenant_id, count(*), coalesce(sum(byte_size), 0) FROM images GROUP BY tenant_id;

CREATE FUNCTION imgflow_count_usage() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO tenant_usage AS u (tenant_id, images, bytes)
        VALUES (NEW.tenant_id, 1, NEW.byte_size)
        ON CONFLICT (tenant_id) DO UPDATE
            SET images = u.images + 1, bytes = u.bytes + EXCLUDED.bytes;
        RETURN NEW;
    END IF;
    UPDATE tenant_usage SET images = images - 1, bytes = bytes - OLD.byte_size
     WHERE tenant_id = OLD.tenant_id;
    RETURN OLD;
END
$$;
CREATE TRIGGER images_usage AFTER INSERT OR DELETE ON images
    FOR EACH ROW EXECUTE FUNCTION imgflow_count_usage();

-- An upload may be flagged bulk (an import): its jobs wait behind everyone's new uploads.
-- Same body as migration 0013 with the kind added.
DROP FUNCTION imgflow_record_upload(
    uuid, uuid, text, text, bigint, text, text[], text[], text[], jsonb[], jsonb, text, float8
);
CREATE FUNCTION imgflow_record_upload(
    p_image uuid,
    p_tenant uuid,
    p_object_key text,
    p_content_type text,
    p_byte_size bigint,
    p_sha256 text,
    p_stages text[],
    p_tasks text[],
    p_queues text[],
    p_payloads jsonb[],
    p_trace jsonb,
    p_key text,
    p_key_ttl_s float8,
    p_kind text DEFAULT 'upload'
) RETURNS TABLE (recorded_image uuid, recorded_status smallint, queued bigint[])
LANGUAGE plpgsql AS $$
DECLARE
    v_image uuid := p_image;
    v_status smallint := 201;
    v_queued bigint[] := '{}';
BEGIN
    INSERT INTO images (id, tenant_id, object_key, content_type, byte_size, sha256)
    VALUES (p_image, p_tenant, p_object_key, p_content_type, p_byte_size, p_sha256)
    ON CONFLICT (object_key) DO NOTHING;
    IF FOUND THEN
        INSERT INTO image_stages (image_id, stage) SELECT p_image, unnest(p_stages);
        WITH sent AS (
            INSERT INTO outbox (image_id, tenant_id, kind, task_name, queue, payload,
                                trace_context)
            SELECT p_image, p_tenant, p_kind, j.task_name, j.queue, j.payload,
                   coalesce(p_trace, '{}')
              FROM unnest(p_tasks, p_queues, p_payloads) AS j (task_name, queue, payload)
            RETURNING id
        )
        SELECT coalesce(array_agg(id ORDER BY id), '{}') INTO v_queued FROM sent;
    ELSE
        SELECT i.id INTO v_image FROM images AS i WHERE i.object_key = p_object_key;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'image % vanished while being recorded', p_object_key
                USING ERRCODE = 'serialization_failure';
        END IF;
        v_status := 200;
    END IF;
    IF p_key IS NOT NULL THEN
        INSERT INTO idempotency_keys AS k (tenant_id, key, sha256, image_id, status)
        VALUES (p_tenant, p_key, p_sha256, v_image, v_status)
        ON CONFLICT (tenant_id, key) DO UPDATE
            SET sha256 = EXCLUDED.sha256, image_id = EXCLUDED.image_id,
                status = EXCLUDED.status, created_at = now()
            WHERE k.created_at <= now() - make_interval(secs => p_key_ttl_s);
        IF NOT FOUND THEN
            RAISE EXCEPTION 'Idempotency-Key % is taken', p_key USING ERRCODE = 'IK001';
        END IF;
    END IF;
    RETURN QUERY SELECT v_image, v_status, v_queued;
END
$$;
