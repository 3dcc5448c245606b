//! End-to-end harness: a gateway (the real Envoy, or the Kong-engine test
//! host, see [`gateway`] and [`kong`]) with the built `.wasm`, the demo API
//! and cost-control, on free loopback ports. Tests assert on responses and on what reached the
//! upstream, never on log lines alone.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod browser;
pub mod control;
pub mod envoy_config;
pub mod gateway;
pub mod http;
pub mod jwt;
pub mod kong;
pub mod procs;
pub mod sse;
pub mod stack;
pub mod wire;
