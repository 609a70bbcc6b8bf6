-- A user's homepage: the widget layout and their settings, as JSON.
--
-- `schema_version` is the version of the layout document's shape, so code can
-- upgrade old documents on read instead of in a big-bang migration.
CREATE TABLE user_preferences (
    user_id         uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    schema_version  integer NOT NULL CHECK (schema_version > 0),
    layout          jsonb NOT NULL,
    settings        jsonb NOT NULL DEFAULT '{}'::jsonb,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
