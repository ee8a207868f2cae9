-- 0001: the first schema of the PostgreSQL backend.
--
-- {s} stands for the configured schema name; the migration runner replaces
-- it and applies this file in one transaction under an advisory lock.
--
-- Jobs that can still change (pending, running) live in `jobs`; finished
-- ones (complete, failed, cancelled) in `jobs_done`. The claim path reads
-- only `jobs`, through a partial index of pending jobs in claim order, so it
-- costs the same at ten finished jobs or ten million. A transition between
-- the two is one statement (DELETE ... RETURNING feeding an INSERT).
--
-- Columns hold what statements filter, order or change on the server;
-- `doc` holds the rest of the job document as json text (params, error,
-- progress, result, checkpoints, fields this version does not know), so a
-- job reads back with the same keys in the same order. json, not jsonb:
-- jsonb would reorder keys and refuses the \u0000 escape a message may hold,
-- and nothing here queries inside the documents.
--
-- Times are milliseconds since the Unix epoch (the model's resolution).

CREATE TABLE {s}.jobs (
    id               text     PRIMARY KEY,
    job_type         text     NOT NULL,
    status           text     NOT NULL CHECK (status IN ('pending', 'running')),
    user_id          text     NOT NULL,
    priority         smallint NOT NULL,
    attempt          bigint   NOT NULL,
    retry_count      bigint   NOT NULL,
    max_retries      bigint   NOT NULL,
    created          bigint   NOT NULL,
    started_at       bigint,
    completed_at     bigint,
    run_at           bigint,
    worker_id        text,
    -- The worker incarnation (workers.inc) holding a running job; NULL when
    -- its claimer never registered (then only its lease protects it).
    worker_inc       bigint,
    lease_expires_at bigint,
    unique_key       text,
    doc              json     NOT NULL
) WITH (fillfactor = 70);
-- Progress writes and lease renewals change no indexed column: with free
-- space on the page (fillfactor) they are HOT updates that touch no index.

-- Due pending jobs in claim order: priority, then id (ids sort by time).
CREATE INDEX jobs_claim ON {s}.jobs (priority DESC, id) WHERE status = 'pending';
-- Running jobs per worker incarnation: heartbeats and recovery.
CREATE INDEX jobs_running ON {s}.jobs (worker_inc) WHERE status = 'running';
CREATE INDEX jobs_user ON {s}.jobs (user_id);
-- A pending or running job holds its unique key: one holder per key.
CREATE UNIQUE INDEX jobs_unique_key ON {s}.jobs (unique_key) WHERE unique_key IS NOT NULL;

CREATE TABLE {s}.jobs_done (
    id               text     PRIMARY KEY,
    job_type         text     NOT NULL,
    status           text     NOT NULL CHECK (status IN ('complete', 'failed', 'cancelled')),
    user_id          text     NOT NULL,
    priority         smallint NOT NULL,
    attempt          bigint   NOT NULL,
    retry_count      bigint   NOT NULL,
    max_retries      bigint   NOT NULL,
    created          bigint   NOT NULL,
    started_at       bigint,
    completed_at     bigint,
    run_at           bigint,
    worker_id        text,
    worker_inc       bigint,
    lease_expires_at bigint,
    unique_key       text,
    doc              json     NOT NULL,
    -- A finished job holds its unique key until then (its completedAt plus
    -- its uniqueAfterFinishMs), when it has both.
    unique_until     bigint GENERATED ALWAYS AS (
        CASE WHEN unique_key IS NULL OR completed_at IS NULL
                  OR (doc ->> 'uniqueAfterFinishMs') IS NULL THEN NULL
             ELSE least(completed_at::numeric + (doc ->> 'uniqueAfterFinishMs')::numeric,
                        9223372036854775807)::bigint END) STORED
);

-- Retention: oldest finished first (a job without completedAt counts from
-- its creation, as in every backend).
CREATE INDEX jobs_done_finished ON {s}.jobs_done ((coalesce(completed_at, created)), id);
-- Listing: newest first, overall and per user.
CREATE INDEX jobs_done_created ON {s}.jobs_done (created DESC, id DESC);
CREATE INDEX jobs_done_user ON {s}.jobs_done (user_id, created DESC, id DESC);
CREATE INDEX jobs_done_unique_key ON {s}.jobs_done (unique_key, unique_until)
    WHERE unique_until IS NOT NULL;

-- Paused job types: claims skip them, in every process.
CREATE TABLE {s}.paused (job_type text PRIMARY KEY);

-- Named leases (the retention sweep's): one holder until `until_ms`.
CREATE TABLE {s}.locks (
    name     text   PRIMARY KEY,
    holder   text   NOT NULL,
    until_ms bigint NOT NULL
);

-- Exact job counts per (type, status), maintained by the statement that
-- changes a job, in the same transaction. Each connection adds to its own
-- shard row (backend pid modulo the shard count), so concurrent writers do
-- not queue on one counter row; `stats` sums a few hundred rows at most.
CREATE TABLE {s}.counts (
    job_type text     NOT NULL,
    status   text     NOT NULL,
    shard    smallint NOT NULL,
    n        bigint   NOT NULL,
    PRIMARY KEY (job_type, status, shard)
) WITH (fillfactor = 50);

-- One row per worker incarnation: a registration gets a fresh `inc` that is
-- never reused, whatever the worker id. `lock_key` is a session advisory
-- lock its store instance holds on its listener connection: the server
-- releases it when that process or connection dies.
CREATE SEQUENCE {s}.worker_inc;
CREATE TABLE {s}.workers (
    inc           bigint  PRIMARY KEY,
    worker_id     text    NOT NULL,
    lease_ms      bigint  NOT NULL,
    lock_key      bigint  NOT NULL,
    alive         boolean NOT NULL,
    host          text,
    pid           integer,
    registered_at bigint  NOT NULL,
    last_seen     bigint  NOT NULL,
    -- When a recovery pass first found the lock free (cleared if held again).
    suspect_since bigint,
    stopped_at    bigint,
    why           text
) WITH (fillfactor = 70);
CREATE INDEX workers_alive ON {s}.workers (worker_id) WHERE alive;

-- A job id is unique across both tables. Inserting into one table waits
-- for any transaction moving that id between the tables; these checks then
-- look at the other table with a fresh snapshot (a volatile function's
-- queries get one), so a create racing with such a move cannot duplicate.
CREATE FUNCTION {s}.absent_from_done(job_id text) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM {s}.jobs_done WHERE id = job_id) THEN
        RAISE unique_violation USING MESSAGE = 'duplicate job id',
            DETAIL = format('Key (id)=(%s) already exists.', job_id);
    END IF;
    RETURN true;
END $$;

CREATE FUNCTION {s}.absent_from_jobs(job_id text) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM {s}.jobs WHERE id = job_id) THEN
        RAISE unique_violation USING MESSAGE = 'duplicate job id',
            DETAIL = format('Key (id)=(%s) already exists.', job_id);
    END IF;
    RETURN true;
END $$;

-- A job becoming pending (created, or retried) with a unique key: no other
-- finished job may still hold the key at `at` (active holders are kept out
-- by the unique index). Fresh snapshot, as above.
CREATE FUNCTION {s}.key_free(job_id text, key text, at bigint) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    holder text;
BEGIN
    IF key IS NULL THEN
        RETURN true;
    END IF;
    SELECT id INTO holder FROM {s}.jobs_done
        WHERE unique_key = key AND unique_until > at AND id <> job_id LIMIT 1;
    IF FOUND THEN
        RAISE unique_violation USING MESSAGE = 'unique key taken',
            CONSTRAINT = 'unique_key_window', DETAIL = holder;
    END IF;
    RETURN true;
END $$;
