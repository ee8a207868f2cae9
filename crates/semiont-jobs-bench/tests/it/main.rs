//! Benchmark harness integration tests: every workload through
//! `semiont-jobs bench` (the CLI finding this crate's binary and passing its
//! output through), and the harness run on its own.

mod bench;
mod support;
