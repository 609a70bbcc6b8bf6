-- News (issue #7): who reads which feeds.

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
