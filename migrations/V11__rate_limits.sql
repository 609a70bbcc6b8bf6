-- Rate limiting (issue #6): rules per action and scope, the violations they
-- caught, the temporary bans repeated violations earned, and the notices
-- that Redis was down (so the fail-mode choice is logged once, not per
-- request). Counters live in Redis; these tables are the policy and the
-- record.

-- A limit: `limit_count` requests per `window_seconds` per subject (GCRA:
-- the same number may come at once). `fail_mode` says what happens when
-- Redis cannot count. `ban_after_violations` refusals within `ban_seconds`
-- earn a ban of `ban_seconds`.
CREATE TABLE rate_limit_rules (
    action                text NOT NULL CHECK (action ~ '^[a-z][a-z0-9_]{1,62}$'),
    scope                 text NOT NULL CHECK (scope IN ('ip', 'user', 'anon')),
    limit_count           integer NOT NULL CHECK (limit_count > 0),
    window_seconds        integer NOT NULL CHECK (window_seconds BETWEEN 1 AND 86400),
    fail_mode             text NOT NULL CHECK (fail_mode IN ('open', 'closed')),
    ban_after_violations  integer CHECK (ban_after_violations > 0),
    ban_seconds           integer CHECK (ban_seconds > 0),
    enabled               boolean NOT NULL DEFAULT true,
    description           text NOT NULL DEFAULT '',
    updated_at            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (action, scope),
    CHECK ((ban_after_violations IS NULL) = (ban_seconds IS NULL))
);

-- The baseline. Sign-in and /bootstrap fail closed (an attacker must not
-- gain from a Redis outage); everything else fails open (reads and posts
-- are better served than refused).
INSERT INTO rate_limit_rules
    (action, scope, limit_count, window_seconds, fail_mode, ban_after_violations, ban_seconds, description)
VALUES
    ('sign_in',         'ip',   30,   600,  'closed', 20,   3600,  'OAuth sign-in starts and callbacks per address'),
    ('bootstrap',       'ip',   5,    600,  'closed', 10,   86400, 'Claims of the first super_admin per address'),
    ('listing_post',    'user', 10,   3600, 'open',   30,   86400, 'Marketplace listings posted per user'),
    ('site_submission', 'user', 5,    3600, 'open',   20,   86400, 'Good Sites submissions per user'),
    ('vote',            'user', 120,  3600, 'open',   NULL, NULL,  'Directory votes per user'),
    ('click',           'anon', 120,  60,   'open',   NULL, NULL,  'Tracked clicks per visitor'),
    ('click',           'ip',   1200, 60,   'open',   NULL, NULL,  'Tracked clicks per address'),
    ('webhook',         'ip',   600,  60,   'open',   NULL, NULL,  'Inbound webhooks per address'),
    ('api',             'ip',   600,  60,   'open',   200,  900,   'API calls per address (the default)'),
    ('page',            'ip',   600,  60,   'open',   200,  900,   'Page views per address (scraping)');

-- A rule as the application reads it.
CREATE FUNCTION rate_limit_rule_json(r rate_limit_rules) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'action', r.action, 'scope', r.scope, 'limit_count', r.limit_count,
        'window_seconds', r.window_seconds, 'fail_mode', r.fail_mode,
        'ban_after_violations', r.ban_after_violations, 'ban_seconds', r.ban_seconds,
        'enabled', r.enabled, 'description', r.description)
$$;

-- A subject going over a limit: the first refusal of each violation window,
-- and the refusal that earned a ban (the count in between lives in Redis).
-- Kept 90 days.
CREATE TABLE rate_limit_violations (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    action       text NOT NULL,
    scope        text NOT NULL,
    subject      text NOT NULL,
    occurred_at  timestamptz NOT NULL,
    violations   bigint NOT NULL
);
CREATE INDEX rate_limit_violations_occurred_idx ON rate_limit_violations (occurred_at);
CREATE INDEX rate_limit_violations_subject_idx ON rate_limit_violations (action, scope, subject);

-- A temporary ban: machine-readable (action, scope, subject, expiry),
-- enforced before the handler runs (from Redis; from here while Redis is
-- down). Lifting is an audited admin action.
CREATE TABLE rate_limit_bans (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    action       text NOT NULL,
    scope        text NOT NULL,
    subject      text NOT NULL,
    reason       text NOT NULL,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    lifted_at    timestamptz,
    lifted_by    uuid REFERENCES users (id) ON DELETE SET NULL,
    lift_reason  text
);
CREATE INDEX rate_limit_bans_active_idx ON rate_limit_bans (action, scope, subject)
    WHERE lifted_at IS NULL;

-- When a Redis outage was last announced per action.
CREATE TABLE rate_limit_outage_notices (
    action      text PRIMARY KEY,
    noticed_at  timestamptz NOT NULL
);
