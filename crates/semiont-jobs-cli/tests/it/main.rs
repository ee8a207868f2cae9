//! CLI integration tests: every command through the real binary, its JSON
//! output schema, exit codes and one-line errors.

mod bench;
mod commands;
mod content;
mod errors;
mod hostile;
mod processes;
mod support;
