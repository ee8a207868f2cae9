-- 0003: a finished job's unique-key window is computed without taking its
-- document apart.
--
-- `unique_until` read `doc ->> 'uniqueAfterFinishMs'`, and PostgreSQL
-- refuses to take apart a json document holding an escaped NUL (\u0000,
-- error 22P05, "cannot be converted to text") even to read another key:
-- a keyed job whose error, result or parameters held a NUL could not be
-- finished (its move into jobs_done failed). The document is read here
-- through its text with every \u0000 escape replaced by \ufffd first; only
-- the number uniqueAfterFinishMs is taken from it, so the replacement never
-- reaches stored data.
ALTER TABLE {s}.jobs_done DROP COLUMN unique_until;
ALTER TABLE {s}.jobs_done ADD COLUMN unique_until bigint GENERATED ALWAYS AS (
    CASE WHEN unique_key IS NULL OR completed_at IS NULL
              OR (replace(doc::text, '\u0000', '\ufffd')::json ->> 'uniqueAfterFinishMs') IS NULL
         THEN NULL
         ELSE least(completed_at::numeric
                    + (replace(doc::text, '\u0000', '\ufffd')::json ->> 'uniqueAfterFinishMs')::numeric,
                    9223372036854775807)::bigint END) STORED;
CREATE INDEX jobs_done_unique_key ON {s}.jobs_done (unique_key, unique_until)
    WHERE unique_until IS NOT NULL;
