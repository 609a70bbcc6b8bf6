-- Users: anonymous visitors and signed-in accounts in one table.
--
-- An anonymous visitor gets a row only on their first write (e.g. saving a
-- layout), never on a page view, so crawlers cannot fill this table. Their
-- `anon_id` is the value of the `vu_anon_id` cookie. Signed-in accounts
-- (identity issue) keep the first anonymous id they had as `anon_id`, which is
-- also the stable cohort key for feature flags.
CREATE TABLE users (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    is_anonymous  boolean NOT NULL,
    anon_id       uuid UNIQUE,
    email         text UNIQUE,
    display_name  text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT anonymous_users_have_an_anon_id CHECK (NOT is_anonymous OR anon_id IS NOT NULL)
);

-- Retention sweeps of stale anonymous rows scan by last activity.
CREATE INDEX users_anonymous_last_seen_idx ON users (last_seen_at) WHERE is_anonymous;
