-- The functions migration 0019 added, as it leaves them (the dashboard's active sessions per
-- UTC hour of last_seen_at in query_session_hourly, kept by a row trigger on sessions and by
-- statement triggers on query_unlisted_users). Frozen: never edit; the live text is
-- migrations/sql/ledger_functions.sql.

-- query_add_session_hours: adds p_sign x the not-revoked sessions of p_users (every user when
-- NULL) to query_session_hourly, per UTC hour of last_seen_at, whether or not the directory
-- lists their users: the callers know (0019). Hours whose count returns to 0 are no row.
-- Two statements, not one with "p_users IS NULL OR": a cached generic plan of that would
-- scan every session for a few users' (sessions_user_seen serves the second).
CREATE OR REPLACE FUNCTION ledger.query_add_session_hours(p_users text[], p_sign integer)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
BEGIN
    IF p_users IS NULL THEN
        INSERT INTO ledger.query_session_hourly AS h (hour, n)
        SELECT date_trunc('hour', s.last_seen_at, 'UTC'), p_sign * count(*)
        FROM ledger.sessions s WHERE s.revoked_at IS NULL
        GROUP BY 1 ORDER BY 1
        ON CONFLICT (hour) DO UPDATE SET n = h.n + EXCLUDED.n;
    ELSIF cardinality(p_users) = 0 THEN
        RETURN;
    ELSE
        INSERT INTO ledger.query_session_hourly AS h (hour, n)
        SELECT date_trunc('hour', s.last_seen_at, 'UTC'), p_sign * count(*)
        FROM ledger.sessions s JOIN unnest(p_users) AS u(id) ON s.user_id = u.id
        WHERE s.revoked_at IS NULL
        GROUP BY 1 ORDER BY 1
        ON CONFLICT (hour) DO UPDATE SET n = h.n + EXCLUDED.n;
    END IF;
    IF p_sign < 0 THEN
        DELETE FROM ledger.query_session_hourly WHERE n = 0;
    END IF;
END $function$;

-- query_on_session_hours: a session write moves query_session_hourly (0019): the old row out
-- of its hour, the new row into its own, each only when not revoked and its user listed (not
-- in query_unlisted_users). Row level, and the UPDATE trigger's WHEN skips a touch that stays
-- in the same hour (most RecordSession calls) before any function runs. The two hours are
-- moved in time order, so concurrent touches lock the hour rows in the same order.
CREATE OR REPLACE FUNCTION ledger.query_on_session_hours()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_old timestamptz;
    v_new timestamptz;
BEGIN
    IF TG_OP <> 'INSERT' AND OLD.revoked_at IS NULL AND NOT EXISTS (
            SELECT 1 FROM ledger.query_unlisted_users u WHERE u.user_id = OLD.user_id) THEN
        v_old := date_trunc('hour', OLD.last_seen_at, 'UTC');
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.revoked_at IS NULL AND NOT EXISTS (
            SELECT 1 FROM ledger.query_unlisted_users u WHERE u.user_id = NEW.user_id) THEN
        v_new := date_trunc('hour', NEW.last_seen_at, 'UTC');
    END IF;
    IF v_old IS NOT DISTINCT FROM v_new THEN
        RETURN NULL;
    END IF;
    IF v_new IS NOT NULL AND (v_old IS NULL OR v_new < v_old) THEN
        INSERT INTO ledger.query_session_hourly AS h (hour, n) VALUES (v_new, 1)
        ON CONFLICT (hour) DO UPDATE SET n = h.n + 1;
    END IF;
    IF v_old IS NOT NULL THEN
        UPDATE ledger.query_session_hourly SET n = n - 1 WHERE hour = v_old;
        DELETE FROM ledger.query_session_hourly WHERE hour = v_old AND n = 0;
    END IF;
    IF v_new IS NOT NULL AND v_old IS NOT NULL AND v_new > v_old THEN
        INSERT INTO ledger.query_session_hourly AS h (hour, n) VALUES (v_new, 1)
        ON CONFLICT (hour) DO UPDATE SET n = h.n + 1;
    END IF;
    RETURN NULL;
END $function$;

-- query_on_unlisted_session_hours: a user entering query_unlisted_users takes its sessions
-- out of query_session_hourly, one leaving it puts them back (0019). A TRUNCATE (the
-- rebuild's, query_support_rebuild) lists every user again: the hours are counted afresh
-- from the sessions, and the rebuild's refill of the unlisted users then takes theirs out
-- again, so the rebuild recomputes query_session_hourly from scratch too.
CREATE OR REPLACE FUNCTION ledger.query_on_unlisted_session_hours()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM ledger.query_session_hourly;
        PERFORM ledger.query_add_session_hours(NULL, 1);
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM ledger.query_add_session_hours(ARRAY(SELECT user_id FROM old_rows), 1);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM ledger.query_add_session_hours(ARRAY(SELECT user_id FROM new_rows), -1);
    END IF;
    RETURN NULL;
END $function$;
