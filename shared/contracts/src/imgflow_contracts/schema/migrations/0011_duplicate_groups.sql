-- Stored duplicate groups: what a person reviews and acts on. The deduper keeps them
-- (imgflow_deduper.groups): after each check it regroups the connected component of the
-- pairs the image touched with the average-linkage rule, keeping a group's id while images
-- join or leave it and bumping its version whenever its members change.

CREATE TABLE duplicate_groups (
    id          uuid        PRIMARY KEY,
    tenant_id   uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- +1 on every change of members: a client acting on a group names the version it saw
    version     integer     NOT NULL DEFAULT 1,
    -- a member was deleted: the deduper regroups what is left at its next job
    dirty       boolean     NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
-- Listing: newest change first within a tenant, the id as the cursor's tie-breaker.
CREATE INDEX duplicate_groups_tenant_updated ON duplicate_groups (tenant_id, updated_at, id);
CREATE INDEX duplicate_groups_dirty ON duplicate_groups (updated_at) WHERE dirty;

-- An image is in at most one group.
CREATE TABLE duplicate_group_members (
    image_id    uuid        PRIMARY KEY REFERENCES images (id) ON DELETE CASCADE,
    group_id    uuid        NOT NULL REFERENCES duplicate_groups (id) ON DELETE CASCADE
);
CREATE INDEX duplicate_group_members_group ON duplicate_group_members (group_id);

-- "Not duplicates", said by a person: the two images never share a group again.
CREATE TABLE duplicate_dismissals (
    image_a     uuid        NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    image_b     uuid        NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    tenant_id   uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (image_a, image_b),
    CHECK (image_a < image_b)
);
CREATE INDEX duplicate_dismissals_image_b ON duplicate_dismissals (image_b);

-- A deleted member changes its group at once (a new version, so a resolve naming the old
-- one is refused) and leaves the rest to be regrouped by the deduper, which owns the rule.
CREATE FUNCTION imgflow_group_member_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE duplicate_groups SET dirty = true, version = version + 1,
                                updated_at = clock_timestamp()
     WHERE id = (SELECT group_id FROM duplicate_group_members WHERE image_id = OLD.id);
    RETURN OLD;
END
$$;

CREATE TRIGGER images_deleted_group BEFORE DELETE ON images
    FOR EACH ROW EXECUTE FUNCTION imgflow_group_member_deleted();

-- Group events share image_events (one id sequence, one stream, one delivery queue):
-- duplicate_group.updated (created, or a new version) and duplicate_group.deleted.
ALTER TABLE image_events ALTER COLUMN image_id DROP NOT NULL;
ALTER TABLE image_events ADD COLUMN group_id uuid, ADD COLUMN group_version integer;

CREATE FUNCTION imgflow_group_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    g duplicate_groups;
    ev image_events;
    body jsonb;
    queued integer;
BEGIN
    IF TG_OP = 'DELETE' THEN
        g := OLD;
    ELSE
        g := NEW;
    END IF;
    INSERT INTO image_events (tenant_id, image_id, group_id, group_version, type, status)
    VALUES (g.tenant_id, NULL, g.id, g.version,
            CASE WHEN TG_OP = 'DELETE' THEN 'duplicate_group.deleted'
                 ELSE 'duplicate_group.updated' END,
            CASE WHEN TG_OP = 'DELETE' THEN 'deleted' ELSE 'active' END)
    RETURNING * INTO ev;
    body := jsonb_build_object(
        'id', ev.id, 'type', ev.type, 'tenant_id', ev.tenant_id, 'image_id', NULL,
        'group_id', ev.group_id, 'version', ev.group_version, 'stage', NULL,
        'status', ev.status, 'error', NULL, 'at', ev.at);
    PERFORM pg_notify('image_events', body::text);
    INSERT INTO webhook_deliveries (webhook_id, event_id, type, payload)
    SELECT w.id, ev.id, ev.type, body
      FROM webhooks AS w
     WHERE w.tenant_id = g.tenant_id AND imgflow_event_matches(w.events, ev.type);
    GET DIAGNOSTICS queued = ROW_COUNT;
    IF queued > 0 THEN
        PERFORM pg_notify('webhook_deliveries', '');
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER duplicate_groups_created_event AFTER INSERT OR DELETE ON duplicate_groups
    FOR EACH ROW EXECUTE FUNCTION imgflow_group_changed();
CREATE TRIGGER duplicate_groups_version_event AFTER UPDATE OF version ON duplicate_groups
    FOR EACH ROW WHEN (OLD.version <> NEW.version)
    EXECUTE FUNCTION imgflow_group_changed();

-- Trash: resolving a group trashes images. A trashed image leaves listings and groups at
-- once, keeps its rows and objects until restored or purged (the API, after
-- IMGFLOW_TRASH_RETENTION_DAYS), and the deduper groups it with nothing.
ALTER TABLE images ADD COLUMN trashed_at timestamptz;
CREATE INDEX images_trashed ON images (trashed_at) WHERE trashed_at IS NOT NULL;

-- Each resolve's answer, by the group and the version it named: the same resolve again
-- answers the same, though the group has changed (or gone) since.
CREATE TABLE duplicate_resolutions (
    group_id    uuid        NOT NULL,
    version     integer     NOT NULL,
    tenant_id   uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    request     jsonb       NOT NULL,
    answer      jsonb       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, version)
);
