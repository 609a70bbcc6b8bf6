-- Click tracking (issue #17): every outbound link the platform renders goes
-- through `/track/click`, which records a row here before it redirects.
--
-- `link_clicks` is partitioned by day on `clicked_at` (UTC). The
-- `clicks.maintain` job creates partitions 60 days ahead and drops those
-- older than 90 days (policy: raw clicks 90 days). The default partition
-- catches a click whose day has no partition yet, so none is ever refused;
-- `link_clicks_ensure_partition` moves such rows into the day's partition
-- when it creates it.
CREATE TABLE link_clicks (
    clicked_at   timestamp NOT NULL,
    link_kind    text NOT NULL CHECK (link_kind IN ('site', 'article', 'listing')),
    link_id      bigint NOT NULL DEFAULT 0,
    target_url   text NOT NULL,
    source       text NOT NULL,
    position     integer NOT NULL DEFAULT 0,
    category_id  bigint NOT NULL DEFAULT 0,
    -- Who clicked, as a hash of the day and their address (else their
    -- anonymous id): the same visitor's clicks of one day share it, and no
    -- two days' can be linked. Rollups count distinct ones as visitors.
    visitor      text,
    anon_id      uuid,
    user_id      uuid
) PARTITION BY RANGE (clicked_at);
CREATE TABLE link_clicks_default PARTITION OF link_clicks DEFAULT;
CREATE INDEX link_clicks_user ON link_clicks (user_id) WHERE user_id IS NOT NULL;

-- Creates the partition for `day` if it is missing, moving any of the
-- day's rows out of the default partition first (Postgres refuses to
-- create a partition whose rows sit in the default). One transaction.
CREATE FUNCTION link_clicks_ensure_partition(day date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    part text := 'link_clicks_p' || to_char(day, 'YYYYMMDD');
BEGIN
    IF to_regclass(part) IS NOT NULL THEN
        RETURN false;
    END IF;
    -- One maker at a time, and no click into the default partition while
    -- its rows move (a click committed between the move and the CREATE
    -- would make the CREATE fail); clicks to other days go on.
    LOCK TABLE link_clicks_default IN SHARE ROW EXCLUSIVE MODE;
    IF to_regclass(part) IS NOT NULL THEN
        RETURN false;
    END IF;
    CREATE TEMP TABLE IF NOT EXISTS link_clicks_moving (LIKE link_clicks) ON COMMIT DROP;
    WITH moved AS (
        DELETE FROM link_clicks_default
        WHERE clicked_at >= day AND clicked_at < day + 1
        RETURNING *)
    INSERT INTO link_clicks_moving SELECT * FROM moved;
    EXECUTE format('CREATE TABLE %I PARTITION OF link_clicks FOR VALUES FROM (%L) TO (%L)',
                   part, day::timestamp, (day + 1)::timestamp);
    INSERT INTO link_clicks SELECT * FROM link_clicks_moving;
    DELETE FROM link_clicks_moving;
    RETURN true;
END
$$;

-- Drops every daily partition wholly before `before`; returns how many.
CREATE FUNCTION link_clicks_drop_before(before date) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    dropped integer := 0;
BEGIN
    FOR r IN
        SELECT c.relname
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        JOIN pg_class p ON p.oid = i.inhparent
        WHERE p.relname = 'link_clicks' AND c.relname ~ '^link_clicks_p[0-9]{8}$'
          AND to_date(substring(c.relname from 14), 'YYYYMMDD') < before
    LOOP
        EXECUTE format('DROP TABLE %I', r.relname);
        dropped := dropped + 1;
    END LOOP;
    DELETE FROM link_clicks_default WHERE clicked_at < before;
    RETURN dropped;
END
$$;

-- The first days' partitions, so a fresh database records clicks in
-- their own partition from the start.
SELECT link_clicks_ensure_partition((now() AT TIME ZONE 'UTC')::date + d)
FROM generate_series(-1, 7) AS d;

-- Clicks per day, link, source and category: what "top" and the reports
-- read. Kept two years. Recomputed whole for a day by each rollup run (so a
-- run is idempotent), and checked against the raw rows it came from.
CREATE TABLE link_click_rollups (
    day          date NOT NULL,
    link_kind    text NOT NULL,
    link_id      bigint NOT NULL,
    source       text NOT NULL,
    category_id  bigint NOT NULL,
    clicks       bigint NOT NULL,
    -- Distinct visitors among them.
    visitors     bigint NOT NULL,
    PRIMARY KEY (day, link_kind, link_id, source, category_id)
);
CREATE INDEX link_click_rollups_link ON link_click_rollups (link_kind, link_id, day);

-- Each rollup run of a day: raw rows counted, rolled-up clicks summed, and
-- whether they agreed (ops see a disagreement on /admin and in the log).
CREATE TABLE link_click_rollup_runs (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    day         date NOT NULL,
    raw_clicks  bigint NOT NULL,
    rolled_up   bigint NOT NULL,
    agreed      boolean NOT NULL,
    ran_at      timestamp NOT NULL
);
CREATE INDEX link_click_rollup_runs_day ON link_click_rollup_runs (day, ran_at DESC);

-- Popularity: visitors per link over the last 30 complete days, refreshed
-- from the rollups by each `clicks.maintain` run. What "top" (directory)
-- and "most read" (news) rank by, without summing rollups per page view.
CREATE TABLE link_popularity (
    link_kind  text NOT NULL,
    link_id    bigint NOT NULL,
    visitors   bigint NOT NULL,
    clicks     bigint NOT NULL,
    PRIMARY KEY (link_kind, link_id)
);
CREATE INDEX link_popularity_top ON link_popularity (link_kind, visitors DESC);
