-- Identity and governance (issue #5): who a user is at each provider, their
-- sessions and refresh tokens, roles, sign-in attempts in flight, consented
-- anonymous merges, impersonation and the one-time bootstrap grant.

-- Signed-in accounts remember the first anonymous id they had: the stable
-- cohort key for feature flags. Not unique: after a declined merge the
-- anonymous row still holds that id in `anon_id` until it expires.
ALTER TABLE users ADD COLUMN cohort_key uuid;

-- One row per (provider, subject): how an account signs in.
CREATE TABLE user_identities (
    provider       text NOT NULL CHECK (provider IN ('google', 'facebook', 'apple')),
    subject        text NOT NULL,
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email          text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    last_login_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, subject)
);
CREATE INDEX user_identities_user_idx ON user_identities (user_id);

-- Admin roles; the permissions each grants are a table in code
-- (components/accounts/src/roles.rs), so a deploy, not a row, changes them.
CREATE TABLE user_roles (
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role        text NOT NULL CHECK (role IN ('super_admin', 'support', 'ops', 'read_only')),
    granted_by  uuid REFERENCES users (id) ON DELETE SET NULL,
    granted_at  timestamptz NOT NULL DEFAULT now(),
    reason      text NOT NULL,
    PRIMARY KEY (user_id, role)
);

-- `/bootstrap` may succeed once, ever: this table holds at most one row.
CREATE TABLE bootstrap_grant (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    user_id     uuid REFERENCES users (id) ON DELETE SET NULL,
    granted_at  timestamptz NOT NULL DEFAULT now()
);

-- A session is a refresh-token family: every rotation stays in it, and
-- revoking it (logout, admin, detected reuse) ends every token it issued.
-- While `impersonating_user_id` is set the session acts as that user.
CREATE TABLE sessions (
    id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id                uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at             timestamptz NOT NULL DEFAULT now(),
    last_refreshed_at      timestamptz NOT NULL DEFAULT now(),
    expires_at             timestamptz NOT NULL,
    revoked_at             timestamptz,
    revoked_reason         text,
    ip                     text,
    user_agent             text,
    impersonating_user_id  uuid REFERENCES users (id) ON DELETE SET NULL
);
CREATE INDEX sessions_user_idx ON sessions (user_id) WHERE revoked_at IS NULL;
CREATE INDEX sessions_expires_idx ON sessions (expires_at);

-- Refresh tokens, stored as SHA-256 hashes only. `rotated_at` set means the
-- token was spent: presenting it again is reuse.
CREATE TABLE refresh_tokens (
    token_hash  bytea PRIMARY KEY,
    session_id  uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    issued_at   timestamptz NOT NULL DEFAULT now(),
    rotated_at  timestamptz
);
CREATE INDEX refresh_tokens_session_idx ON refresh_tokens (session_id);

-- A sign-in in flight, between /auth/<provider>/login and its callback:
-- keyed by the SHA-256 of `state`, used at most once, short-lived.
CREATE TABLE oauth_logins (
    state_hash     bytea PRIMARY KEY,
    provider       text NOT NULL,
    nonce          text NOT NULL,
    code_verifier  text NOT NULL,
    anon_id        uuid,
    return_to      text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    consumed_at    timestamptz
);
CREATE INDEX oauth_logins_expires_idx ON oauth_logins (expires_at);

-- Offered merges of anonymous data into an account, awaiting consent.
-- `anonymous_user_id` is deliberately not a foreign key: accepting deletes
-- that user in the same statement that marks the offer decided.
CREATE TABLE merge_offers (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id            uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    anonymous_user_id  uuid NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    expires_at         timestamptz NOT NULL,
    decided_at         timestamptz
);
CREATE INDEX merge_offers_user_idx ON merge_offers (user_id) WHERE decided_at IS NULL;

-- GDPR: every merge decision, with the consent text's version and where it
-- was given from. Purged after 90 days by the accounts-retention cron.
-- `anonymous_user_id` is not a foreign key: the anonymous row is deleted by
-- an accepted merge and expires after a declined one.
CREATE TABLE account_merge_audit (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id            uuid REFERENCES users (id) ON DELETE SET NULL,
    anonymous_user_id  uuid NOT NULL,
    decision           text NOT NULL CHECK (decision IN ('accepted', 'declined')),
    consent_version    text NOT NULL,
    merged             jsonb NOT NULL DEFAULT '{}'::jsonb,
    decided_at         timestamptz NOT NULL DEFAULT now(),
    ip                 text,
    user_agent         text
);
CREATE INDEX account_merge_audit_decided_idx ON account_merge_audit (decided_at);
