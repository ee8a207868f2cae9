//! CLI integration tests: every command through the real binary, its JSON
//! output schema, exit codes and one-line errors.

mod commands;
mod content;
mod crash_retry;
mod errors;
mod features;
mod hostile;
mod pg_torture;
mod postgres;
mod processes;
mod serve;
mod support;
mod ts_layout;
