-- Screenshots captured by `screenshot-host` (the SCREENSHOT queue).
--
-- `directory_screenshot_versions`: every successful capture of a URL, one
-- row per version, never deleted (policy P4: screenshots are kept without
-- limit; old versions are only flagged). The newest version of a URL is
-- `is_current`; recording a new version flips the flag in the same
-- transaction. The images themselves are in blob storage under
-- `full_key` and `thumb_key` (WebP). `site_id` is the Good Sites entry the
-- capture was for, when there is one (the directory adds its foreign key).
CREATE TABLE directory_screenshot_versions (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    url           text NOT NULL,
    site_id       bigint,
    version       integer NOT NULL,
    is_current    boolean NOT NULL DEFAULT true,
    final_url     text NOT NULL,
    full_key      text NOT NULL,
    full_width    integer NOT NULL,
    full_height   integer NOT NULL,
    full_bytes    integer NOT NULL,
    thumb_key     text NOT NULL,
    thumb_width   integer NOT NULL,
    thumb_height  integer NOT NULL,
    thumb_bytes   integer NOT NULL,
    capture_ms    integer NOT NULL,
    job_id        bigint,
    captured_at   timestamp NOT NULL,
    UNIQUE (url, version)
);
CREATE UNIQUE INDEX directory_screenshot_versions_current
    ON directory_screenshot_versions (url) WHERE is_current;
CREATE INDEX directory_screenshot_versions_site
    ON directory_screenshot_versions (site_id, version DESC) WHERE site_id IS NOT NULL;
CREATE INDEX directory_screenshot_versions_recent
    ON directory_screenshot_versions (captured_at DESC);

-- Every capture attempt that ended, captured or failed, with the reason a
-- failure happened (TLS error, private address, too large, timed out...):
-- what ops read in `GET /admin/api/screenshots` and the success rate is
-- computed from. A capture that was interrupted by the host (its browser
-- recycled, a shutdown) is recorded as `failed` with that reason; its job
-- runs again. `screenshot-host` purges rows older than 90 days (hourly).
CREATE TABLE screenshot_captures (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    url          text NOT NULL,
    site_id      bigint,
    job_id       bigint,
    attempt      integer NOT NULL,
    outcome      text NOT NULL CHECK (outcome IN ('captured', 'failed')),
    reason       text,
    final_url    text,
    version_id   bigint REFERENCES directory_screenshot_versions (id),
    capture_ms   integer NOT NULL,
    finished_at  timestamp NOT NULL
);
CREATE INDEX screenshot_captures_recent ON screenshot_captures (finished_at DESC);
CREATE INDEX screenshot_captures_url ON screenshot_captures (url, finished_at DESC);
