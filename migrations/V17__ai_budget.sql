-- The AI budget (issue #7, policy P10): limits, usage, notices to ops.

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
