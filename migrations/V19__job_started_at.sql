-- A job's attempt counts when that job itself starts, not when a worker
-- claims it in a batch (#14): a worker that dies (a trap, out of memory) in
-- one job must not charge an attempt to the jobs it had claimed but never
-- started, nor keep them locked until the stale-lock rescue.
--
-- `started_at` is set (and `attempts` incremented) as a worker starts the
-- job; a claim clears it. While a worker makes progress it renews the lock
-- time of everything it holds, so a claimed, unstarted job whose lock has not
-- been renewed for a lease (`job_claim_lease_seconds`) belongs to a worker
-- that stopped: it goes straight back to `pending`, its attempts untouched.
-- A started job whose worker stopped is rescued after the lock timeout as
-- before, that attempt counted: a poison job reaches the dead letter queue
-- on its own.
ALTER TABLE delayed_jobs ADD COLUMN started_at timestamp;

-- Jobs running while this migrates were started by workers that predate
-- `started_at`: they count as started (their lock is not a lapsed claim).
UPDATE delayed_jobs SET started_at = locked_at WHERE status = 'running';
