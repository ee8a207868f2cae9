-- 0004: claims walk the pending index in claim order, whatever the
-- planner's statistics say.
--
-- The claim's inner query (due pending jobs of accepted, unpaused types in
-- claim order, LIMIT n, FOR UPDATE SKIP LOCKED) was planned by the table's
-- statistics. Right after a bulk enqueue into a young table the planner
-- believes there are a handful of pending rows, and a prepared (generic)
-- plan then read every pending row through a bitmap scan, joined each to
-- `paused`, and sorted them all to keep one: 1.3 ms per claim at 3,000
-- pending jobs, and linear in the backlog. Here the query lives in a
-- function whose settings leave the planner only the ordered scan of
-- `jobs_claim`, which stops after the n-th row it can lock; the paused
-- types are read once per call instead of once per row. Peeks (the next
-- job a claim would take, without taking it) go the same way. ROWS 1 tells the
-- claim statement around it to find the picked ids through the primary
-- key (with the default guess of 1,000 rows it hashed a scan of the whole
-- table).
CREATE FUNCTION {s}.due_pending(at bigint, types text[], n bigint, lock boolean)
RETURNS SETOF text
LANGUAGE plpgsql VOLATILE ROWS 1
SET enable_seqscan = off SET enable_bitmapscan = off SET enable_sort = off
AS $$
BEGIN
    IF lock THEN
        RETURN QUERY
        SELECT j.id FROM {s}.jobs j
        WHERE j.status = 'pending'
          AND (j.run_at IS NULL OR j.run_at <= at)
          AND (types IS NULL OR j.job_type = ANY (types))
          AND j.job_type <> ALL (ARRAY(SELECT p.job_type FROM {s}.paused p))
        ORDER BY j.priority DESC, j.id
        LIMIT n
        FOR UPDATE OF j SKIP LOCKED;
    ELSE
        -- A look without taking (`peek_next`).
        RETURN QUERY
        SELECT j.id FROM {s}.jobs j
        WHERE j.status = 'pending'
          AND (j.run_at IS NULL OR j.run_at <= at)
          AND (types IS NULL OR j.job_type = ANY (types))
          AND j.job_type <> ALL (ARRAY(SELECT p.job_type FROM {s}.paused p))
        ORDER BY j.priority DESC, j.id
        LIMIT n;
    END IF;
END $$;
