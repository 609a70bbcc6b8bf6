-- The generic audit log: who did what to what, when, why, from where.
--
-- Every admin action, permission denial and consent decision writes a row.
-- `actor_user_id` is kept nullable and set to NULL when a user is deleted
-- (GDPR), while `actor_label` keeps a non-identifying description.
CREATE TABLE audit_log (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at    timestamptz NOT NULL DEFAULT now(),
    actor_user_id  uuid REFERENCES users (id) ON DELETE SET NULL,
    actor_label    text NOT NULL,
    action         text NOT NULL,
    target_type    text,
    target_id      text,
    reason         text,
    before         jsonb,
    after          jsonb,
    ip             text,
    user_agent     text,
    trace_id       text
);

CREATE INDEX audit_log_occurred_at_idx ON audit_log (occurred_at DESC);
CREATE INDEX audit_log_target_idx ON audit_log (target_type, target_id, occurred_at DESC);
CREATE INDEX audit_log_actor_idx ON audit_log (actor_user_id, occurred_at DESC);
