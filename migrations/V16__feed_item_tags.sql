-- News (issue #7): AI tags on articles.

-- Tags on an article. `tag_state`: `pending` until the model has tagged it
-- (the widget shows an "untagged" badge meanwhile), `tagged` after.
-- An article is one row per content hash, so the same URL is never tagged
-- twice, whichever feeds carry it.
ALTER TABLE feed_items
    ADD COLUMN tags text[] NOT NULL DEFAULT '{}',
    ADD COLUMN tag_state text NOT NULL DEFAULT 'pending' CHECK (tag_state IN ('pending', 'tagged')),
    ADD COLUMN tagged_at timestamptz,
    -- A tagging job holds the articles it sent until this time, so two jobs
    -- never send the same article (no transaction spans the model call).
    ADD COLUMN tag_claimed_until timestamptz;
CREATE INDEX feed_items_pending_idx ON feed_items (first_seen_at) WHERE tag_state = 'pending';
CREATE INDEX feed_items_tags_idx ON feed_items USING gin (tags);
