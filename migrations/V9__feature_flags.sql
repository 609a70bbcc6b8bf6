-- Feature flags (issue #6): definitions, their baseline rows, and the
-- consent-aware evaluation log.

-- A flag: on for everyone in `allow_user_ids`, otherwise on for the
-- `rollout_percent` of cohorts whose bucket (MD5 of flag key and cohort key,
-- mapped to 0–99) is below it, while `enabled`. `kill_switch` wins over
-- everything, allow-list included.
CREATE TABLE feature_flags (
    key              text PRIMARY KEY CHECK (key ~ '^[a-z][a-z0-9_]{1,62}$'),
    description      text NOT NULL DEFAULT '',
    enabled          boolean NOT NULL DEFAULT false,
    rollout_percent  smallint NOT NULL DEFAULT 0 CHECK (rollout_percent BETWEEN 0 AND 100),
    allow_user_ids   uuid[] NOT NULL DEFAULT '{}',
    kill_switch      boolean NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- The baseline: every widget has a flag so any of them can be killed; the
-- young integrations start off (they are turned on by ops once metrics say
-- they are stable).
INSERT INTO feature_flags (key, description, enabled, rollout_percent) VALUES
    ('news_widget',        'The news widget on the homepage',                         true,  100),
    ('weather_widget',     'The weather widget on the homepage',                      true,  100),
    ('stocks_widget',      'The stocks widget (Alpha Vantage quotes)',                false, 0),
    ('social_integration', 'The social widget and Meta Graph integration',            false, 0),
    ('marketplace_widget', 'The marketplace widget on the homepage',                  true,  100),
    ('good_sites_widget',  'The Good Sites widget on the homepage',                   true,  100),
    ('quick_links_widget', 'The quick links widget on the homepage',                  true,  100),
    ('promoted_listings',  'Paid promotion of marketplace listings',                  false, 0),
    ('ai_tagging',         'AI tagging of news items (under the monthly budget)',     true,  100);

-- Who asked for which flag and what they got. `session_hash` is always set
-- (a hash of the session or anonymous id: aggregate statistics without an
-- identity); `user_id` only when the user gave analytics consent. Partitioned
-- by month: the retention job creates the months ahead and drops those older
-- than 90 days; deleting an account (or withdrawing consent) removes the
-- user's rows at once.
CREATE TABLE feature_flag_evaluations (
    flag_key      text NOT NULL,
    evaluated_at  timestamptz NOT NULL,
    session_hash  text NOT NULL,
    user_id       uuid,
    result        boolean NOT NULL,
    reason        text NOT NULL
) PARTITION BY RANGE (evaluated_at);

CREATE INDEX feature_flag_evaluations_user_idx
    ON feature_flag_evaluations (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX feature_flag_evaluations_flag_idx
    ON feature_flag_evaluations (flag_key, evaluated_at);

-- Creates the monthly partition holding `at` (idempotent). Called here for
-- the months around the migration and by the retention job every day.
CREATE FUNCTION feature_flag_evaluations_partition(at timestamptz) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    month_start date := date_trunc('month', at AT TIME ZONE 'UTC')::date;
    name text := format('feature_flag_evaluations_%s', to_char(month_start, 'YYYY_MM'));
BEGIN
    EXECUTE format(
        'CREATE TABLE IF NOT EXISTS %I PARTITION OF feature_flag_evaluations
             FOR VALUES FROM (%L) TO (%L)',
        name,
        (month_start::timestamp AT TIME ZONE 'UTC'),
        ((month_start + interval '1 month')::timestamp AT TIME ZONE 'UTC'));
    RETURN name;
END $$;

SELECT feature_flag_evaluations_partition(now() - interval '1 month');
SELECT feature_flag_evaluations_partition(now());
SELECT feature_flag_evaluations_partition(now() + interval '1 month');
SELECT feature_flag_evaluations_partition(now() + interval '2 months');

-- A flag as the application reads it (and the audit log records it).
CREATE FUNCTION feature_flag_json(f feature_flags) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'key', f.key, 'description', f.description, 'enabled', f.enabled,
        'rollout_percent', f.rollout_percent, 'allow_user_ids', to_jsonb(f.allow_user_ids),
        'kill_switch', f.kill_switch, 'updated_at', f.updated_at)
$$;

-- Drops the monthly partitions that ended before `cutoff`; returns their
-- names. Partition names are generated here, never from input.
CREATE FUNCTION feature_flag_evaluations_drop_before(cutoff timestamptz) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    part text;
BEGIN
    FOR part IN
        SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'feature_flag_evaluations'::regclass
          AND c.relname ~ '^feature_flag_evaluations_[0-9]{4}_[0-9]{2}$'
          AND (to_date(right(c.relname, 7), 'YYYY_MM') + interval '1 month')::timestamp
              AT TIME ZONE 'UTC' <= cutoff
        ORDER BY c.relname
    LOOP
        EXECUTE format('DROP TABLE %I', part);
        RETURN NEXT part;
    END LOOP;
END $$;
