-- 0005: finishes find the rows they take out of `jobs` through the primary
-- key, whatever the planner's statistics say.
--
-- The finish statement (complete, fail and cancel of many jobs at once,
-- moved into `jobs_done`) is prepared once per connection, and its
-- generic plan is made from the table as it was then. A young `jobs`
-- table is a few pages, so that plan hashed a sequential scan of the
-- whole table, and kept doing so while the table filled with the dead
-- versions every claim and finish leave behind until autovacuum came:
-- 216 buffers per finish of two jobs by the end of a 10,000-job run, a
-- cost that grows with the churn between two autovacuums. Here the
-- delete lives in a function whose settings leave the planner only the
-- index (35 buffers per finish).
CREATE FUNCTION {s}.take_finished(ids text[], types text[], statuses text[], attempts bigint[])
RETURNS SETOF text
LANGUAGE plpgsql VOLATILE ROWS 10
SET enable_seqscan = off
AS $$
BEGIN
    RETURN QUERY
    DELETE FROM {s}.jobs j
    USING unnest(ids, types, statuses, attempts) AS r(id, job_type, exp_status, exp_attempt)
    WHERE j.id = ANY (ids)
      AND j.id = r.id AND j.job_type = r.job_type AND j.status = r.exp_status
      AND (r.exp_attempt IS NULL OR j.attempt = r.exp_attempt)
    RETURNING j.id;
END $$;
