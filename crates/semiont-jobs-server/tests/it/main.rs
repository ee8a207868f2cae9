//! Integration tests of the HTTP server: real HTTP on an ephemeral loopback
//! port.

mod api;
mod auth;
mod dashboard;
mod hostile;
mod metrics;
mod shutdown;
mod sse;
mod support;
