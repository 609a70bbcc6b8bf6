-- Classified listings. A listing belongs to a signed-in account (deleted
-- with it); `body_html` is the Markdown body rendered and sanitised when
-- saved, so reads never render. Times are `timestamp` holding UTC (V18). `location` is the city's point or the
-- seller's own lat/lon; `search` is the weighted text the keyword search
-- matches and ranks (title A, body B).
--
-- Lifecycle: draft → active (published, `expires_at` = +30 days, renewable)
-- → expired (daily job; the seller is reminded 3 days before) → archived 30
-- days later (images deleted, `archived_at` set) → purged a year after
-- that. `sold` and `removed` end a listing early; `pending` waits for a
-- payment (issue #19).
CREATE TABLE marketplace_listings (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    seller_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    category_id     bigint NOT NULL REFERENCES marketplace_categories (id),
    title           text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 120),
    body_markdown   text NOT NULL CHECK (char_length(body_markdown) <= 10000),
    body_html       text NOT NULL,
    price_cents     bigint CHECK (price_cents >= 0),
    city_id         bigint REFERENCES geo_cities (id),
    place_name      text NOT NULL,
    location        geography(Point, 4326) NOT NULL,
    contact_method  text NOT NULL CHECK (contact_method IN ('email', 'phone')),
    contact_value   text NOT NULL,
    status          text NOT NULL DEFAULT 'draft'
                    CHECK (status IN ('draft', 'pending', 'active', 'sold', 'expired', 'removed')),
    search          tsvector GENERATED ALWAYS AS (
                        setweight(to_tsvector('english', title), 'A')
                        || setweight(to_tsvector('english', body_markdown), 'B')
                    ) STORED,
    created_at      timestamp NOT NULL DEFAULT now(),
    updated_at      timestamp NOT NULL DEFAULT now(),
    published_at    timestamp,
    expires_at      timestamp,
    reminded_at     timestamp,
    ended_at        timestamp,
    archived_at     timestamp,
    removed_reason  text,
    -- How many image rows (pending or attached) the listing has: taking a
    -- slot is an UPDATE of this row, which serialises concurrent uploads,
    -- so no race passes the limit of 12.
    image_slots     integer NOT NULL DEFAULT 0 CHECK (image_slots BETWEEN 0 AND 12)
);

-- Searches read active listings only: partial indexes keep them small.
-- The location index also holds the id (btree_gist's float8 opclass), so a
-- nearest-first search reads `ORDER BY location <-> point, id` straight
-- from it (both are distances GiST orders by), ties and all.
CREATE EXTENSION IF NOT EXISTS btree_gist;
CREATE INDEX marketplace_listings_location_idx ON marketplace_listings
    USING gist (location, (id::float8)) WHERE status = 'active';
CREATE INDEX marketplace_listings_search_idx ON marketplace_listings
    USING gin (search) WHERE status = 'active';
CREATE INDEX marketplace_listings_newest_idx ON marketplace_listings
    (published_at DESC, id DESC) WHERE status = 'active';
-- "My listings", and the account's GDPR export.
CREATE INDEX marketplace_listings_seller_idx ON marketplace_listings (seller_id, id DESC);
-- The daily lifecycle job: due reminders and expiries, archives, purges.
CREATE INDEX marketplace_listings_expiry_idx ON marketplace_listings (expires_at)
    WHERE status = 'active';
CREATE INDEX marketplace_listings_ended_idx ON marketplace_listings (ended_at)
    WHERE status IN ('expired', 'sold', 'removed');

-- A listing's pictures, in object storage under `key`. A row is `pending`
-- from the moment an upload URL is handed out until the upload is confirmed
-- (a HEAD on the stored object), then `attached`; either way it holds one of
-- the listing's 12 `image_slots`. Pending rows an hour old are abandoned
-- uploads: the lifecycle job deletes them (and their objects), freeing
-- their slots.
CREATE TABLE marketplace_listing_images (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    listing_id    bigint NOT NULL REFERENCES marketplace_listings (id) ON DELETE CASCADE,
    key           text NOT NULL UNIQUE,
    content_type  text NOT NULL CHECK (content_type IN ('image/jpeg', 'image/png', 'image/webp')),
    byte_size     integer NOT NULL CHECK (byte_size BETWEEN 1 AND 8388608),
    status        text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'attached')),
    position      integer NOT NULL DEFAULT 0,
    created_at    timestamp NOT NULL DEFAULT now(),
    attached_at   timestamp
);

CREATE INDEX marketplace_listing_images_listing_idx ON marketplace_listing_images (listing_id, position, id);

-- Objects to delete from storage: written in the same statement that drops
-- an image row (removal, archive, account deletion), drained by the
-- `marketplace.delete_images` job, so a storage outage loses nothing.
CREATE TABLE marketplace_image_deletions (
    key         text PRIMARY KEY,
    queued_at   timestamp NOT NULL DEFAULT now(),
    attempts    integer NOT NULL DEFAULT 0,
    last_error  text
);

-- Every image row that goes — removed by its seller, archived, or with its
-- listing or account (ON DELETE CASCADE) — queues its object for deletion.
CREATE FUNCTION marketplace_queue_image_deletion() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO marketplace_image_deletions (key) VALUES (OLD.key)
    ON CONFLICT (key) DO NOTHING;
    RETURN OLD;
END;
$$;

CREATE TRIGGER marketplace_listing_images_deleted
    AFTER DELETE ON marketplace_listing_images
    FOR EACH ROW EXECUTE FUNCTION marketplace_queue_image_deletion();
