-- Good Sites (issue #17): the curated web directory.
--
-- `directory_categories`: the category tree (two levels: sections and
-- their categories), seeded below. Ops add categories with a migration.
CREATE TABLE directory_categories (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    parent_id    bigint REFERENCES directory_categories (id),
    slug         text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$'),
    name         text NOT NULL,
    description  text NOT NULL DEFAULT '',
    position     integer NOT NULL DEFAULT 0
);
CREATE INDEX directory_categories_parent ON directory_categories (parent_id, position);

INSERT INTO directory_categories (slug, name, description, position) VALUES
    ('arts', 'Arts & Culture', 'Music, books, film and the people who make them', 1),
    ('community', 'Community', 'Local groups, volunteering and events', 2),
    ('computing', 'Computing', 'Programming, open source and security', 3),
    ('science', 'Science', 'Space, nature and how things work', 4),
    ('home', 'Home & Garden', 'Cooking, gardening and fixing things', 5),
    ('reference', 'Reference', 'Maps, dictionaries and learning', 6),
    ('news-media', 'News & Media', 'Independent news, radio and podcasts', 7),
    ('recreation', 'Sports & Recreation', 'Outdoors, games and sport', 8);
INSERT INTO directory_categories (parent_id, slug, name, position)
SELECT p.id, c.slug, c.name, c.position
FROM (VALUES
    ('arts', 'music', 'Music', 1), ('arts', 'books', 'Books', 2), ('arts', 'film', 'Film', 3),
    ('community', 'local-groups', 'Local groups', 1), ('community', 'volunteering', 'Volunteering', 2),
    ('community', 'events', 'Events', 3),
    ('computing', 'programming', 'Programming', 1), ('computing', 'open-source', 'Open source', 2),
    ('computing', 'security', 'Security', 3),
    ('science', 'space', 'Space', 1), ('science', 'nature', 'Nature', 2),
    ('home', 'cooking', 'Cooking', 1), ('home', 'gardening', 'Gardening', 2), ('home', 'diy', 'DIY', 3),
    ('reference', 'maps', 'Maps', 1), ('reference', 'dictionaries', 'Dictionaries', 2),
    ('reference', 'learning', 'Learning', 3),
    ('news-media', 'podcasts', 'Podcasts', 1), ('news-media', 'radio', 'Radio', 2),
    ('recreation', 'outdoors', 'Outdoors', 1), ('recreation', 'games', 'Games', 2)
) AS c (parent, slug, name, position)
JOIN directory_categories p ON p.slug = c.parent;

-- `directory_sites`: one row per normalised URL, whatever its fate (a
-- rejected site stays, so the same URL is not queued again). A submission
-- is `pending` until a moderator of its category approves or rejects it;
-- the fetch job fills `fetched_*` and the AI's `suggested_category_id`;
-- the link-health job fills `health*`. `url_key` is what makes two URLs
-- the same site (no scheme, no `www.`, see `village_directory::urls`).
CREATE TABLE directory_sites (
    id                     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    url                    text NOT NULL,
    url_key                text NOT NULL UNIQUE,
    host                   text NOT NULL,
    title                  text NOT NULL,
    description            text NOT NULL DEFAULT '',
    category_id            bigint NOT NULL REFERENCES directory_categories (id),
    submitted_by           uuid REFERENCES users (id) ON DELETE SET NULL,
    status                 text NOT NULL DEFAULT 'pending'
                           CHECK (status IN ('pending', 'approved', 'rejected')),
    moderation_reason      text,
    moderated_by           uuid REFERENCES users (id) ON DELETE SET NULL,
    moderated_at           timestamp,
    fetch_state            text NOT NULL DEFAULT 'pending'
                           CHECK (fetch_state IN ('pending', 'fetched', 'failed')),
    fetched_at             timestamp,
    fetch_status           integer,
    fetch_error            text,
    fetched_title          text,
    fetched_description    text,
    suggested_category_id  bigint REFERENCES directory_categories (id),
    health                 text NOT NULL DEFAULT 'unknown'
                           CHECK (health IN ('unknown', 'ok', 'broken', 'redirected', 'parked')),
    health_detail          jsonb,
    health_checked_at      timestamp,
    health_failures        integer NOT NULL DEFAULT 0,
    health_next_at         timestamp,
    -- When a screenshot was last queued (approval or the monthly recapture).
    screenshot_requested_at timestamp,
    upvotes                integer NOT NULL DEFAULT 0,
    downvotes              integer NOT NULL DEFAULT 0,
    search                 tsvector GENERATED ALWAYS AS (
                               setweight(to_tsvector('english', title), 'A')
                               || setweight(to_tsvector('english', description), 'B')
                               || setweight(to_tsvector('simple', host), 'C')) STORED,
    created_at             timestamp NOT NULL,
    updated_at             timestamp NOT NULL,
    approved_at            timestamp
);
CREATE INDEX directory_sites_category ON directory_sites (category_id, status);
CREATE INDEX directory_sites_pending ON directory_sites (created_at) WHERE status = 'pending';
CREATE INDEX directory_sites_new ON directory_sites (approved_at DESC) WHERE status = 'approved';
CREATE INDEX directory_sites_health_due ON directory_sites (health_next_at) WHERE status = 'approved';
CREATE INDEX directory_sites_submitter ON directory_sites (submitted_by);
CREATE INDEX directory_sites_search ON directory_sites USING gin (search);

-- Screenshots name the site they were captured for (issue #16 left the
-- column without its key). NOT VALID: rows queued by ops before the
-- directory existed are not checked; every new row is.
ALTER TABLE directory_screenshot_versions
    ADD CONSTRAINT directory_screenshot_versions_site_fk
    FOREIGN KEY (site_id) REFERENCES directory_sites (id) ON DELETE SET NULL NOT VALID;

-- One vote per user per site, changeable (+1 or -1); withdrawing deletes.
CREATE TABLE directory_votes (
    site_id     bigint NOT NULL REFERENCES directory_sites (id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    value       smallint NOT NULL CHECK (value IN (-1, 1)),
    voted_at    timestamp NOT NULL,
    updated_at  timestamp NOT NULL,
    PRIMARY KEY (site_id, user_id)
);
CREATE INDEX directory_votes_user ON directory_votes (user_id);

-- Every karma change with its cause: a user's karma is the sum of their
-- rows (no total kept elsewhere, so it can never drift from its causes).
-- `category_id` is the site's category when it happened: karma earned in
-- a section is what makes a moderator of it.
CREATE TABLE directory_karma (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    delta        integer NOT NULL,
    cause        text NOT NULL CHECK (cause IN (
                     'vote_received', 'vote_cast', 'submission_approved',
                     'submission_rejected')),
    site_id      bigint REFERENCES directory_sites (id) ON DELETE SET NULL,
    category_id  bigint REFERENCES directory_categories (id),
    -- Who caused it (the voter, the moderator), when someone did.
    actor_id     uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at   timestamp NOT NULL
);
CREATE INDEX directory_karma_user ON directory_karma (user_id, category_id);

-- Moderators appointed by admins, per category (a section's grant covers
-- its categories). Moderators earned by karma are not rows: they are
-- computed from `directory_karma` when asked.
CREATE TABLE directory_moderators (
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    category_id  bigint NOT NULL REFERENCES directory_categories (id),
    granted_by   uuid REFERENCES users (id) ON DELETE SET NULL,
    granted_at   timestamp NOT NULL,
    PRIMARY KEY (user_id, category_id)
);

-- A user's vote on an approved site, and the karma it moves, in one
-- transaction (the site row is locked, so concurrent votes on a site are
-- counted one after another). `p_value` is +1, -1 or 0 (withdraw).
-- Karma: the submitter gains (new - old) per vote received (+1 for an
-- upvote, -2 for an upvote turned down, ...); the voter gains +1 for
-- casting a vote and loses it when withdrawing (`vote_cast`: it counts in
-- a user's karma, never towards moderating a section). A vote on one's own site
-- counts in the tally but moves no karma. Returns the new tally, or no
-- row when the site is not approved.
CREATE FUNCTION directory_cast_vote(p_site bigint, p_user uuid, p_value integer, p_now timestamp)
RETURNS TABLE (upvotes integer, downvotes integer, vote integer)
LANGUAGE plpgsql AS $$
DECLARE
    site record;
    old integer;
BEGIN
    IF p_value NOT IN (-1, 0, 1) THEN
        RAISE EXCEPTION 'a vote is -1, 0 or 1' USING ERRCODE = '22023';
    END IF;
    SELECT s.id, s.submitted_by, s.category_id INTO site
    FROM directory_sites s WHERE s.id = p_site AND s.status = 'approved' FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT v.value INTO old FROM directory_votes v WHERE v.site_id = p_site AND v.user_id = p_user;
    old := coalesce(old, 0);
    IF p_value = 0 THEN
        DELETE FROM directory_votes v WHERE v.site_id = p_site AND v.user_id = p_user;
    ELSE
        INSERT INTO directory_votes (site_id, user_id, value, voted_at, updated_at)
        VALUES (p_site, p_user, p_value, p_now, p_now)
        ON CONFLICT (site_id, user_id) DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at;
    END IF;
    UPDATE directory_sites s SET
        upvotes = s.upvotes + (p_value = 1)::integer - (old = 1)::integer,
        downvotes = s.downvotes + (p_value = -1)::integer - (old = -1)::integer
    WHERE s.id = p_site;
    IF p_value <> old AND site.submitted_by IS DISTINCT FROM p_user THEN
        IF site.submitted_by IS NOT NULL THEN
            INSERT INTO directory_karma (user_id, delta, cause, site_id, category_id, actor_id, created_at)
            VALUES (site.submitted_by, p_value - old, 'vote_received', p_site, site.category_id, p_user, p_now);
        END IF;
        IF (old = 0) <> (p_value = 0) THEN
            INSERT INTO directory_karma (user_id, delta, cause, site_id, category_id, actor_id, created_at)
            VALUES (p_user, CASE WHEN old = 0 THEN 1 ELSE -1 END, 'vote_cast', p_site,
                    site.category_id, p_user, p_now);
        END IF;
    END IF;
    RETURN QUERY SELECT s.upvotes, s.downvotes, p_value FROM directory_sites s WHERE s.id = p_site;
END
$$;
