-- Similar stacks (issue 28): images of one scene or moment (burst frames, crops that
-- overlap, another viewpoint), joined by duplicate and similar pairs, kept by the deduper
-- as the duplicate groups are (imgflow_runtime.db.similar_stacks): after each check it
-- stacks the image's component again with imgflow_runtime.stacking, under the tenant's
-- grouping lock, keeping a stack's id while images join or leave it. A stack holds whole
-- duplicate groups and at least two of them (or ungrouped images): one group of copies
-- alone is a duplicate group, not a stack.

-- The sharpness of the analysis copy (variance of its Laplacian at a fixed size), written
-- by the deduper: the first criterion of a stack's suggested pick.
ALTER TABLE images ADD COLUMN sharpness real;

CREATE TABLE similar_stacks (
    id          uuid        PRIMARY KEY,
    tenant_id   uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- +1 on every change of members or resolution: a resolve names the version it saw
    version     integer     NOT NULL DEFAULT 1,
    -- a member was trashed or deleted: restacked by the API's background loop
    dirty       boolean     NOT NULL DEFAULT false,
    -- resolved: a person kept a pick on this version; a change of members reopens it
    resolved_at timestamptz,
    kept        uuid,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX similar_stacks_tenant_updated ON similar_stacks (tenant_id, updated_at, id);
CREATE INDEX similar_stacks_dirty ON similar_stacks (updated_at) WHERE dirty;

-- An image is in at most one stack.
CREATE TABLE similar_stack_members (
    image_id    uuid        PRIMARY KEY REFERENCES images (id) ON DELETE CASCADE,
    stack_id    uuid        NOT NULL REFERENCES similar_stacks (id) ON DELETE CASCADE
);
CREATE INDEX similar_stack_members_stack ON similar_stack_members (stack_id);

-- "Not the same scene", said by a person: the two images never share a stack again.
CREATE TABLE similar_dismissals (
    image_a     uuid        NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    image_b     uuid        NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    tenant_id   uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (image_a, image_b),
    CHECK (image_a < image_b)
);
CREATE INDEX similar_dismissals_image_b ON similar_dismissals (image_b);

-- Each resolve's answer, by the stack and the version it named: the same resolve again
-- answers the same, though the stack has changed (or gone) since.
CREATE TABLE similar_stack_resolutions (
    stack_id    uuid        NOT NULL,
    version     integer     NOT NULL,
    tenant_id   uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    request     jsonb       NOT NULL,
    answer      jsonb       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stack_id, version)
);

-- A member deleted or trashed changes its stack at once (a new version, so a resolve
-- naming the old one is refused); the background loop restacks what is left.
CREATE FUNCTION imgflow_stack_member_gone() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    gone uuid := CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END;
    stack uuid;
BEGIN
    DELETE FROM similar_stack_members WHERE image_id = gone RETURNING stack_id INTO stack;
    IF stack IS NOT NULL THEN
        UPDATE similar_stacks SET dirty = true, version = version + 1, resolved_at = NULL,
                                  kept = NULL, updated_at = clock_timestamp()
         WHERE id = stack;
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER images_deleted_stack BEFORE DELETE ON images
    FOR EACH ROW EXECUTE FUNCTION imgflow_stack_member_gone();
CREATE TRIGGER images_trashed_stack AFTER UPDATE OF trashed_at ON images
    FOR EACH ROW WHEN (OLD.trashed_at IS NULL AND NEW.trashed_at IS NOT NULL)
    EXECUTE FUNCTION imgflow_stack_member_gone();

-- Stack events share image_events (one id sequence, one stream, one delivery queue):
-- similar_stack.updated (created, or a new version), similar_stack.resolved and
-- similar_stack.deleted, with the stack's id and version.
ALTER TABLE image_events ADD COLUMN stack_id uuid;

CREATE FUNCTION imgflow_stack_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    s similar_stacks;
    kind text;
    ev image_events;
    body jsonb;
    queued integer;
BEGIN
    IF TG_OP = 'DELETE' THEN
        s := OLD;
        kind := 'deleted';
    ELSE
        s := NEW;
        kind := TG_ARGV[0];
    END IF;
    INSERT INTO image_events (tenant_id, image_id, stack_id, group_version, type, status)
    VALUES (s.tenant_id, NULL, s.id, s.version, 'similar_stack.' || kind,
            CASE WHEN kind = 'deleted' THEN 'deleted'
                 WHEN kind = 'resolved' THEN 'resolved' ELSE 'active' END)
    RETURNING * INTO ev;
    body := jsonb_build_object(
        'id', ev.id, 'type', ev.type, 'tenant_id', ev.tenant_id, 'image_id', NULL,
        'stack_id', ev.stack_id, 'version', ev.group_version, 'stage', NULL,
        'status', ev.status, 'error', NULL, 'at', ev.at);
    PERFORM pg_notify('image_events', body::text);
    INSERT INTO webhook_deliveries (webhook_id, event_id, type, payload)
    SELECT w.id, ev.id, ev.type, body
      FROM webhooks AS w
     WHERE w.tenant_id = s.tenant_id AND imgflow_event_matches(w.events, ev.type);
    GET DIAGNOSTICS queued = ROW_COUNT;
    IF queued > 0 THEN
        PERFORM pg_notify('webhook_deliveries', '');
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER similar_stacks_created_event AFTER INSERT ON similar_stacks
    FOR EACH ROW EXECUTE FUNCTION imgflow_stack_changed('updated');
CREATE TRIGGER similar_stacks_deleted_event AFTER DELETE ON similar_stacks
    FOR EACH ROW EXECUTE FUNCTION imgflow_stack_changed('deleted');
-- a resolve's new version is announced once, as similar_stack.resolved
CREATE TRIGGER similar_stacks_version_event AFTER UPDATE OF version ON similar_stacks
    FOR EACH ROW WHEN (OLD.version <> NEW.version
                       AND NOT (NEW.resolved_at IS NOT NULL
                                AND OLD.resolved_at IS DISTINCT FROM NEW.resolved_at))
    EXECUTE FUNCTION imgflow_stack_changed('updated');
CREATE TRIGGER similar_stacks_resolved_event AFTER UPDATE OF resolved_at ON similar_stacks
    FOR EACH ROW WHEN (NEW.resolved_at IS NOT NULL
                       AND OLD.resolved_at IS DISTINCT FROM NEW.resolved_at)
    EXECUTE FUNCTION imgflow_stack_changed('resolved');
