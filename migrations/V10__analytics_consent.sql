-- Analytics consent (issue #6): when the user said yes; NULL when they never
-- did or withdrew. Feature-flag evaluations record the user id only while it
-- is set; withdrawing purges the user's evaluation rows at once.
ALTER TABLE users ADD COLUMN analytics_consent_at timestamptz;
