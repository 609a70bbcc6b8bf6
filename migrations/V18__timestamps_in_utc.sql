-- Points in time become `timestamp` (without time zone) holding UTC, and the
-- database's TimeZone is pinned to UTC (issue #13).
--
-- Why: Spin 3.6's Postgres host (`spin:postgres/postgres@4.0.0`, what
-- SpinKube runs) reads and binds its `datetime` value only as a zone-less
-- date-time, which its driver accepts for `timestamp` and refuses for
-- `timestamptz`: every statement that read or bound a `timestamptz` failed in
-- production. A `timestamp` column holding UTC is read and bound as is.
--
-- One step, not expand-then-contract (migrations/README.md, rule 3): the
-- version running before this one could not read these columns under Spin
-- at all, so there is no working reader to keep working; and with the
-- session in UTC the change rewrites no table (below).
--
-- The pinned TimeZone keeps server-side time right: `now()` (a timestamptz)
-- is stored into these columns, and compared with them, through the
-- session's TimeZone. New sessions of this database get UTC whatever the
-- cluster's default; `village-migrate`'s test clones set it again (settings
-- are not copied with a template).
DO $$
BEGIN
    EXECUTE format('ALTER DATABASE %I SET TimeZone = %L', current_database(), 'UTC');
END $$;
-- With the session in UTC the timestamptz → timestamp cast is the identity on
-- the stored value, so Postgres (12+) changes each column's type without
-- rewriting its table (no USING clause: an expression would force one).
SET LOCAL TimeZone = 'UTC';
SET LOCAL lock_timeout = '10s';

-- Every timestamptz column of an ordinary table (partitions excepted: the
-- evaluation log is rebuilt below, as a partition key cannot change type).
-- One statement per table, so indexes over several of its columns (the
-- feed items' coalesce) never see a mix of the two types.
DO $$
DECLARE
    tab record;
BEGIN
    FOR tab IN
        SELECT c.relname AS name,
               string_agg(format('ALTER COLUMN %I TYPE timestamp', a.attname), ', '
                          ORDER BY a.attnum) AS changes
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind = 'r' AND NOT c.relispartition
          AND a.atttypid = 'timestamptz'::regtype AND a.attnum > 0 AND NOT a.attisdropped
        GROUP BY c.relname
        ORDER BY 1
    LOOP
        EXECUTE format('ALTER TABLE %I ', tab.name) || tab.changes;
    END LOOP;
END $$;

-- The flag evaluation log: detach the monthly partitions (remembering
-- which), convert each, rebuild the parent on `timestamp` and attach exactly
-- those again (their indexes are adopted by the new parent's).
CREATE TEMP TABLE v18_detached (name text PRIMARY KEY) ON COMMIT DROP;
DO $$
DECLARE
    part record;
BEGIN
    FOR part IN
        SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'feature_flag_evaluations'::regclass
    LOOP
        IF part.relname !~ '^feature_flag_evaluations_[0-9]{4}_[0-9]{2}$' THEN
            RAISE EXCEPTION 'unexpected partition % of feature_flag_evaluations', part.relname;
        END IF;
        EXECUTE format('ALTER TABLE feature_flag_evaluations DETACH PARTITION %I', part.relname);
        EXECUTE format('ALTER TABLE %I ALTER COLUMN evaluated_at TYPE timestamp', part.relname);
        INSERT INTO v18_detached VALUES (part.relname);
    END LOOP;
END $$;

DROP TABLE feature_flag_evaluations;
DROP FUNCTION feature_flag_evaluations_partition(timestamptz);
DROP FUNCTION feature_flag_evaluations_drop_before(timestamptz);

CREATE TABLE feature_flag_evaluations (
    flag_key      text NOT NULL,
    evaluated_at  timestamp NOT NULL,
    session_hash  text NOT NULL,
    user_id       uuid,
    result        boolean NOT NULL,
    reason        text NOT NULL
) PARTITION BY RANGE (evaluated_at);

CREATE INDEX feature_flag_evaluations_user_idx
    ON feature_flag_evaluations (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX feature_flag_evaluations_flag_idx
    ON feature_flag_evaluations (flag_key, evaluated_at);

-- Creates the monthly partition holding `at` (UTC; idempotent). Called by
-- the retention job every day.
CREATE FUNCTION feature_flag_evaluations_partition(at timestamp) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    month_start date := date_trunc('month', at)::date;
    name text := format('feature_flag_evaluations_%s', to_char(month_start, 'YYYY_MM'));
BEGIN
    EXECUTE format(
        'CREATE TABLE IF NOT EXISTS %I PARTITION OF feature_flag_evaluations
             FOR VALUES FROM (%L) TO (%L)',
        name, month_start::timestamp, (month_start + interval '1 month')::timestamp);
    RETURN name;
END $$;

-- Drops the monthly partitions that ended before `cutoff` (UTC); returns
-- their names. Partition names are generated here, never from input.
CREATE FUNCTION feature_flag_evaluations_drop_before(cutoff timestamp) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    part text;
BEGIN
    FOR part IN
        SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'feature_flag_evaluations'::regclass
          AND c.relname ~ '^feature_flag_evaluations_[0-9]{4}_[0-9]{2}$'
          AND (to_date(right(c.relname, 7), 'YYYY_MM') + interval '1 month')::timestamp <= cutoff
        ORDER BY c.relname
    LOOP
        EXECUTE format('DROP TABLE %I', part);
        RETURN NEXT part;
    END LOOP;
END $$;

-- The detached months go back under the new parent.
DO $$
DECLARE
    part record;
    month_start date;
BEGIN
    FOR part IN SELECT name FROM v18_detached LOOP
        month_start := to_date(right(part.name, 7), 'YYYY_MM');
        EXECUTE format('ALTER TABLE feature_flag_evaluations ATTACH PARTITION %I
                            FOR VALUES FROM (%L) TO (%L)',
                       part.name, month_start::timestamp,
                       (month_start + interval '1 month')::timestamp);
    END LOOP;
END $$;

SELECT feature_flag_evaluations_partition((now() AT TIME ZONE 'UTC') + interval '1 month');
SELECT feature_flag_evaluations_partition((now() AT TIME ZONE 'UTC') + interval '2 months');

-- A point in time as text with its zone (ISO 8601, `Z`), for JSON and
-- messages: a bare `timestamp` renders without one, which readers (and
-- JavaScript's Date) would take as local time.
CREATE FUNCTION utc_text(t timestamp) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT to_char(t, 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

-- A flag as the application reads it (and the audit log records it): its
-- time keeps the explicit UTC zone clients already parse.
CREATE OR REPLACE FUNCTION feature_flag_json(f feature_flags) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'key', f.key, 'description', f.description, 'enabled', f.enabled,
        'rollout_percent', f.rollout_percent, 'allow_user_ids', to_jsonb(f.allow_user_ids),
        'kill_switch', f.kill_switch,
        'updated_at', utc_text(f.updated_at))
$$;
