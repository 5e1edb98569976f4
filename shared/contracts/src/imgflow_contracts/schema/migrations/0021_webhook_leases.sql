-- Webhook delivery across sender replicas (issue 29, continued).

-- A delivery whose attempt is in flight carries its claim's lease (the attempt's time
-- limit plus a margin). Senders count these rows, not their own memory, so the limits per
-- endpoint, host and tenant hold across replicas; a replica that died holds its slots
-- only until their leases pass. Cleared when the attempt's outcome is recorded.
ALTER TABLE webhook_deliveries ADD COLUMN leased_until timestamptz;
CREATE INDEX webhook_deliveries_leased ON webhook_deliveries (webhook_id)
    WHERE status = 'pending' AND leased_until IS NOT NULL;

-- A disabled endpoint's backlog is bounded: past the cap its oldest deliveries are
-- dropped (status `dropped`), and counted here for the tenant to see.
ALTER TABLE webhooks ADD COLUMN backlog_dropped bigint NOT NULL DEFAULT 0;
