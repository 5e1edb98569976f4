-- Record an upload in one statement (issue 16): the image, its pending stages, its first
-- jobs in the outbox and its Idempotency-Key, all or nothing. The API used to spend seven
-- to nine round trips on this (BEGIN, the image, the stages, the outbox, the key, COMMIT,
-- and a recall query before); each costs the API CPU and holds a pooled connection.
--
-- Bytes already recorded (the same object key) are not an error: the answer is that image
-- with status 200. With a key, a live record of it made by another request raises
-- SQLSTATE IK001 and undoes everything here, so concurrent requests with one key make at
-- most one image; the caller then answers as that record says.
CREATE FUNCTION imgflow_record_upload(
    p_image uuid,
    p_tenant uuid,
    p_object_key text,
    p_content_type text,
    p_byte_size bigint,
    p_sha256 text,
    p_stages text[],        -- every stage of the image, created pending
    p_tasks text[],         -- the jobs to enqueue now: task names,
    p_queues text[],        -- their queues,
    p_payloads jsonb[],     -- and their kwargs
    p_trace jsonb,          -- the request's W3C trace context, for the relay
    p_key text,             -- Idempotency-Key, or NULL
    p_key_ttl_s float8
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
            INSERT INTO outbox (image_id, task_name, queue, payload, trace_context)
            SELECT p_image, j.task_name, j.queue, j.payload, coalesce(p_trace, '{}')
              FROM unnest(p_tasks, p_queues, p_payloads) AS j (task_name, queue, payload)
            RETURNING id
        )
        SELECT coalesce(array_agg(id ORDER BY id), '{}') INTO v_queued FROM sent;
    ELSE
        -- Identical bytes are an image already (perhaps recorded while these were
        -- stored); a statement of its own sees that commit.
        SELECT i.id INTO v_image FROM images AS i WHERE i.object_key = p_object_key;
        IF NOT FOUND THEN  -- and deleted again since: the client may simply retry
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
        IF NOT FOUND THEN  -- a live record: another request with this key came first
            RAISE EXCEPTION 'Idempotency-Key % is taken', p_key USING ERRCODE = 'IK001';
        END IF;
    END IF;
    RETURN QUERY SELECT v_image, v_status, v_queued;
END
$$;
