//! Workspace-level integration tests: the model-based property test, the
//! hostile-input corpus, the full-disk test and the security pass (see
//! `docs/reliability.md` for the tables these tests back).

mod bad_input;
mod full_disk;
mod fuzz_regressions;
mod model_based;
mod security;
mod support;
mod ts_package;
