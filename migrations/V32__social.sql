-- The social widget: a user's Meta connection (Facebook and Instagram
-- through one Facebook Login) and the posts cached from it.

-- One connection per user. The long-lived token is sealed (AEAD,
-- `village_social::tokens`): `token_key_id` names the key from
-- `social_token_keys` that sealed it, so keys can rotate.
CREATE TABLE social_connections (
    user_id             uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    -- Meta's app-scoped user id (what deauthorize callbacks name).
    meta_user_id        text NOT NULL UNIQUE CHECK (char_length(meta_user_id) <= 64),
    name                text NOT NULL DEFAULT '' CHECK (char_length(name) <= 200),
    instagram_user_id   text CHECK (char_length(instagram_user_id) <= 64),
    instagram_username  text CHECK (char_length(instagram_username) <= 100),
    token_key_id        text NOT NULL,
    token_sealed        bytea NOT NULL,
    token_expires_at    timestamp NOT NULL,
    scopes              text NOT NULL DEFAULT '' CHECK (char_length(scopes) <= 500),
    -- `active`; `stale` once the token lapsed or Meta refused it (the
    -- widget asks to reconnect; posts stay); `archived` when stale more
    -- than seven days (posts shown as archived).
    status              text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'stale', 'archived')),
    stale_since         timestamp,
    stale_notified_at   timestamp,
    last_refreshed_at   timestamp,
    posts_fetched_at    timestamp,
    last_error          text,
    connected_at        timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'utc')
);

CREATE INDEX social_connections_expiry_idx ON social_connections (token_expires_at);

-- Posts as last fetched; kept until the user removes them (or the
-- connection, or their account). A post the user removed stays as a
-- tombstone (its content cleared, `removed_at` set) so the next fetch does
-- not bring it back. `meta_user_id` is whose Facebook account it came
-- from: Meta's data-deletion callback names that account, possibly after
-- the connection itself is gone.
CREATE TABLE social_posts (
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    meta_user_id  text NOT NULL CHECK (char_length(meta_user_id) <= 64),
    network       text NOT NULL CHECK (network IN ('facebook', 'instagram')),
    post_id       text NOT NULL CHECK (char_length(post_id) <= 100),
    message       text NOT NULL DEFAULT '' CHECK (char_length(message) <= 5000),
    permalink     text CHECK (char_length(permalink) <= 2000),
    image_url     text CHECK (char_length(image_url) <= 2000),
    posted_at     timestamp NOT NULL,
    fetched_at    timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'utc'),
    archived      boolean NOT NULL DEFAULT false,
    removed_at    timestamp,
    PRIMARY KEY (user_id, network, post_id)
);

CREATE INDEX social_posts_meta_user_idx ON social_posts (meta_user_id);

CREATE INDEX social_posts_recent_idx ON social_posts (user_id, posted_at DESC) WHERE removed_at IS NULL;

-- Meta's data-deletion callbacks: the confirmation code Meta shows the
-- person, and what was deleted (the status page says so). The deletion
-- runs in the statement that records the request.
CREATE TABLE social_deletion_requests (
    confirmation_code    text PRIMARY KEY,
    meta_user_id         text NOT NULL,
    connections_deleted  integer NOT NULL DEFAULT 0,
    posts_deleted        integer NOT NULL DEFAULT 0,
    requested_at         timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'utc'),
    completed_at         timestamp
);
