-- News (issue #7), second half: who reads which feeds, the default set,
-- AI tags on articles, and the AI budget (policy P10).

-- A signed-in user's own feeds. Until they first add or remove one
-- (`users.feeds_chosen_at`), they read the default set, as anonymous
-- visitors do.
CREATE TABLE feed_subscriptions (
    user_id   uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    feed_id   bigint NOT NULL REFERENCES feeds (id) ON DELETE CASCADE,
    added_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, feed_id)
);
CREATE INDEX feed_subscriptions_feed_idx ON feed_subscriptions (feed_id);
ALTER TABLE users ADD COLUMN feeds_chosen_at timestamptz;

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

-- The default set every anonymous visitor reads. Breaking news refreshes
-- every 5 minutes, the rest every 15. Ops change the set in SQL for now.
INSERT INTO feeds (url, title, refresh_interval_seconds, is_default) VALUES
    ('https://feeds.bbci.co.uk/news/world/rss.xml', 'BBC News — World', 300, true),
    ('https://feeds.npr.org/1001/rss.xml', 'NPR News', 300, true),
    ('https://www.theguardian.com/world/rss', 'The Guardian — World', 900, true),
    ('https://hnrss.org/frontpage', 'Hacker News', 900, true);

-- One month's AI budget. A month's row is created, with the configured
-- default, the first time anything reads it; ops raise it with a reason.
CREATE TABLE ai_budgets (
    month        date PRIMARY KEY CHECK (extract(day FROM month) = 1),
    limit_cents  bigint NOT NULL CHECK (limit_cents >= 0),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- Every call to the model: what it was for, the tokens the API reported and
-- what they cost by the price table in force (micro-cents: 1e-6 cent, so
-- per-token prices stay whole numbers).
CREATE TABLE ai_usage (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    month             date NOT NULL,
    purpose           text NOT NULL,
    model             text NOT NULL,
    items             integer NOT NULL,
    input_tokens      bigint NOT NULL,
    output_tokens     bigint NOT NULL,
    cost_microcents   bigint NOT NULL,
    recorded_at       timestamptz NOT NULL
);
CREATE INDEX ai_usage_month_idx ON ai_usage (month);

-- Threshold notices to ops: one row per month, threshold and channel, so
-- each is sent once; a failed delivery is retried by the hourly check.
CREATE TABLE ai_budget_notices (
    month         date NOT NULL,
    threshold     integer NOT NULL CHECK (threshold IN (75, 90, 100)),
    channel       text NOT NULL CHECK (channel IN ('email', 'slack')),
    attempts      integer NOT NULL DEFAULT 0,
    last_error    text,
    last_attempt_at timestamptz,
    delivered_at  timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (month, threshold, channel)
);

-- A month's budget as JSON for audit rows.
CREATE FUNCTION ai_budget_json(b ai_budgets) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_object('month', b.month, 'limit_cents', b.limit_cents)
$$;
