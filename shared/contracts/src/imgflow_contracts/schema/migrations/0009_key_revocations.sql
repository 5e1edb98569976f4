-- A revoked or deleted API key is announced on channel api_key_revoked (payload: its
-- SHA-256, hex) in the revoker's own transaction, whoever revokes it (imgflow-admin, SQL,
-- a tenant deleted). Every API process listens and drops the key from its cache at once,
-- rather than trusting it until IMGFLOW_API_KEY_CACHE_S runs out.
CREATE FUNCTION imgflow_announce_key_revocation() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('api_key_revoked', encode(OLD.key_sha256, 'hex'));
    RETURN NULL;
END
$$;

CREATE TRIGGER api_keys_revoked
    AFTER UPDATE OF revoked_at ON api_keys
    FOR EACH ROW WHEN (NEW.revoked_at IS NOT NULL AND OLD.revoked_at IS NULL)
    EXECUTE FUNCTION imgflow_announce_key_revocation();

CREATE TRIGGER api_keys_deleted
    AFTER DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION imgflow_announce_key_revocation();
