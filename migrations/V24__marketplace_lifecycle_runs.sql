-- What each run of the daily `marketplace.lifecycle` job did (reminders,
-- expiries, archives, purges, deleted objects): ops read it, tests assert
-- on it. Kept 90 days by the job itself.
CREATE TABLE marketplace_lifecycle_runs (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ran_at  timestamp NOT NULL,
    counts  jsonb NOT NULL
);
