-- News feeds (issue #7): the feeds, their articles once each, and which
-- feeds carry which article. AI tags and the visitors' subscriptions come
-- in their own migrations.

-- A feed and its fetch state: conditional-GET validators, when it is next
-- due, and how it has been failing (a failing feed backs off).
CREATE TABLE feeds (
    id                        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    url                       text NOT NULL UNIQUE,
    title                     text NOT NULL DEFAULT '',
    refresh_interval_seconds  integer NOT NULL DEFAULT 900 CHECK (refresh_interval_seconds >= 60),
    is_default                boolean NOT NULL DEFAULT false,
    etag                      text,
    last_modified             text,
    next_fetch_at             timestamptz NOT NULL DEFAULT now(),
    last_fetched_at           timestamptz,
    last_success_at           timestamptz,
    last_error                text,
    consecutive_failures      integer NOT NULL DEFAULT 0,
    created_at                timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX feeds_due_idx ON feeds (next_fetch_at);

-- An article, once, whichever feeds carry it: `content_hash` is the
-- SHA-256 of its normalised link (or of guid and title without one).
CREATE TABLE feed_items (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    content_hash   text NOT NULL UNIQUE,
    title          text NOT NULL,
    link           text,
    summary_html   text NOT NULL,
    published_at   timestamptz,
    first_seen_at  timestamptz NOT NULL
);
CREATE INDEX feed_items_recent_idx ON feed_items ((coalesce(published_at, first_seen_at)) DESC);

-- Which feeds carry an article, under which of their own ids.
CREATE TABLE feed_item_sources (
    feed_id  bigint NOT NULL REFERENCES feeds (id) ON DELETE CASCADE,
    item_id  bigint NOT NULL REFERENCES feed_items (id) ON DELETE CASCADE,
    guid     text NOT NULL,
    seen_at  timestamptz NOT NULL,
    PRIMARY KEY (feed_id, item_id)
);
CREATE INDEX feed_item_sources_item_idx ON feed_item_sources (item_id);
