-- The embedded blob store: screenshots and other binary objects, kept in
-- Postgres when no S3-compatible bucket is configured (development, tests,
-- small installs). Served through a function with signed, expiring URLs.
CREATE TABLE blobs (
    key           text PRIMARY KEY,
    content_type  text NOT NULL,
    bytes         bytea NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
