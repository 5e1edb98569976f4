-- Webhook delivery leaves the API for its own deployable (services/webhook-sender) and
-- each endpoint gets a circuit breaker: `active` (deliveries go), `paused` after N
-- consecutive failures (deliveries wait; one probe at a growing interval; its success
-- resumes), `disabled` after a long outage (nothing goes until the tenant re-enables it).

ALTER TABLE webhooks
    ADD COLUMN state text NOT NULL DEFAULT 'active'
        CHECK (state IN ('active', 'paused', 'disabled')),
    ADD COLUMN state_since timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN consecutive_failures integer NOT NULL DEFAULT 0,
    -- the first failure of the current run of failures: the outage's start
    ADD COLUMN failing_since timestamptz,
    ADD COLUMN last_error text,
    ADD COLUMN last_error_at timestamptz,
    ADD COLUMN next_probe_at timestamptz,
    ADD COLUMN probe_interval_s double precision,
    -- since when the host has not resolved (a bounded wait before that is permanent)
    ADD COLUMN unresolvable_since timestamptz,
    -- the URL's host: the sender limits its concurrency per host as well as per endpoint
    ADD COLUMN host text;
UPDATE webhooks SET host = lower(substring(url FROM '^https?://([^/:?#]+)'));
ALTER TABLE webhooks ALTER COLUMN host SET NOT NULL;

CREATE FUNCTION imgflow_webhook_host() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.host := lower(substring(NEW.url FROM '^https?://([^/:?#]+)'));
    RETURN NEW;
END
$$;
CREATE TRIGGER webhooks_host BEFORE INSERT OR UPDATE OF url ON webhooks
    FOR EACH ROW EXECUTE FUNCTION imgflow_webhook_host();

CREATE INDEX webhooks_paused_probe ON webhooks (next_probe_at) WHERE state = 'paused';

-- An endpoint's pending deliveries in order: what a claim, a probe and a re-enable read.
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (webhook_id, created_at, id)
    WHERE status = 'pending';

-- `dropped`: pending when the tenant re-enabled the endpoint and asked to drop its backlog.
ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_status_check;
ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_status_check
    CHECK (status IN ('pending', 'delivered', 'failed', 'dropped'));

-- Webhook events (webhook.disabled) share the tenant's event stream with image events.
ALTER TABLE image_events ADD COLUMN webhook_id uuid;

CREATE FUNCTION imgflow_emit_webhook_event(
    p_tenant uuid, p_webhook uuid, p_type text, p_status text, p_error text
) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    ev image_events;
BEGIN
    INSERT INTO image_events (tenant_id, image_id, webhook_id, type, status, error)
    VALUES (p_tenant, NULL, p_webhook, p_type, p_status, left(p_error, 500))
    RETURNING * INTO ev;
    PERFORM pg_notify('image_events', jsonb_build_object(
        'id', ev.id, 'type', ev.type, 'tenant_id', ev.tenant_id, 'image_id', NULL,
        'webhook_id', ev.webhook_id, 'stage', NULL, 'status', ev.status,
        'error', ev.error, 'at', ev.at)::text);
    RETURN ev.id;
END
$$;
