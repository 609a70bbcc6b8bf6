-- Postgres's JIT off for this database: it compiles a query once its
-- estimated cost passes `jit_above_cost`, which a radius search over a
-- million listings does — and the compiling (0.3–0.9 s measured by
-- `village-bench marketplace`) costs far more than the milliseconds the
-- search takes. Nothing here runs queries long enough to repay it.
-- `village-migrate`'s test clones set it again (settings are not copied
-- with a template).
DO $$
BEGIN
    EXECUTE format('ALTER DATABASE %I SET jit = off', current_database());
END $$;
