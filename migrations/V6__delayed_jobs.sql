-- Delayed jobs: the one table every queue's work lives in.
--
-- Workers claim pending, due rows with FOR UPDATE SKIP LOCKED; a claim sets
-- status `running`, the lock owner and time, and counts the attempt. Failures
-- go back to `pending` with a later `run_at` (exponential backoff with
-- jitter) until `max_attempts`, then to `dead`, keeping payload and errors
-- for inspection. `succeeded` rows are purged after a retention period.
CREATE TABLE delayed_jobs (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue            text NOT NULL CHECK (queue IN ('HIGH', 'DEFAULT', 'LOW', 'BULK', 'SCREENSHOT')),
    handler          text NOT NULL,
    payload          jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- Trace context and similar envelope data, kept apart from the payload.
    metadata         jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- Lower runs first within a queue.
    priority         integer NOT NULL DEFAULT 0,
    run_at           timestamptz NOT NULL DEFAULT now(),
    attempts         integer NOT NULL DEFAULT 0,
    max_attempts     integer NOT NULL DEFAULT 5 CHECK (max_attempts > 0),
    idempotency_key  text,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'running', 'succeeded', 'dead')),
    locked_by        text,
    locked_at        timestamptz,
    last_error       text,
    -- One entry per failed attempt: {attempt, at, error}.
    error_chain      jsonb NOT NULL DEFAULT '[]'::jsonb,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz
);

-- Claiming: the due, pending jobs of a queue in priority order. Partial, so
-- millions of finished rows cost the claim nothing.
CREATE INDEX delayed_jobs_claim_idx ON delayed_jobs (queue, priority, run_at, id) WHERE status = 'pending';

-- Rescuing stale locks.
CREATE INDEX delayed_jobs_running_idx ON delayed_jobs (locked_at) WHERE status = 'running';

-- Retention and the ops view of recent failures.
CREATE INDEX delayed_jobs_finished_idx ON delayed_jobs (finished_at) WHERE status IN ('succeeded', 'dead');

-- An idempotency key names one unit of work: while a job with it is pending,
-- running or succeeded (until purged), enqueueing it again returns that job.
-- A dead job frees its key, so the work can be enqueued afresh.
CREATE UNIQUE INDEX delayed_jobs_idempotency_idx ON delayed_jobs (idempotency_key)
    WHERE idempotency_key IS NOT NULL AND status IN ('pending', 'running', 'succeeded');
