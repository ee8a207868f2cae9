-- 0002: a create of a finished job fences its id in `jobs` as well.
--
-- Before, a pending create of an id (into `jobs`) and a finished create of
-- the same id (into `jobs_done`) racing each other could both commit: each
-- checked the other table before the other's row was committed. Now the
-- finished create also inserts a placeholder of the id into `jobs` and
-- deletes it again, in its own transaction. The primary key of `jobs`
-- makes the placeholder wait for an uncommitted pending create of that id
-- (and fail with a duplicate id when that commits), and makes a later
-- pending create wait for the finished one, whose check of `jobs_done`
-- (`absent_from_done`, fresh snapshot) then sees it. The placeholder is
-- never visible to another transaction. Only creates of finished jobs
-- (`copy`, imports) pay for it; transitions never call this function.
CREATE OR REPLACE FUNCTION {s}.absent_from_jobs(job_id text) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    INSERT INTO {s}.jobs (id, job_type, status, user_id, priority, attempt, retry_count,
        max_retries, created, doc)
    VALUES (job_id, '', 'pending', '', 0, 0, 0, 0, 0, 'null');
    DELETE FROM {s}.jobs WHERE id = job_id;
    RETURN true;
END $$;
