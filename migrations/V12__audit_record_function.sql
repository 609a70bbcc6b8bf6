-- One audit row from a serialised `AuditEntry` (village_platform::audit)
-- plus the before/after a statement computed, so that a change and its
-- audit row can be written by one statement (flags, rate limits): no change
-- without its trail, and no trail without its change.
CREATE FUNCTION audit_record(entry jsonb, before jsonb, after jsonb) RETURNS bigint
LANGUAGE sql VOLATILE AS $$
    INSERT INTO audit_log (actor_user_id, actor_label, action, target_type, target_id,
                           reason, before, after, ip, user_agent, trace_id)
    VALUES ((entry->>'actor_user_id')::uuid, entry->>'actor_label', entry->>'action',
            entry->>'target_type', entry->>'target_id', entry->>'reason', before, after,
            entry->>'ip', entry->>'user_agent', entry->>'trace_id')
    RETURNING id
$$;
