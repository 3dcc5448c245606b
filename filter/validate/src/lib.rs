//! `cost-optimizer-validate`: the filter's config check, run before a
//! config is deployed.
//!
//! The gateway runs the same check only when it loads the filter, and on
//! Kong that is too late: `nginx -t` does not run the filter's
//! `on_configure`, and a refused config kills the workers while the master
//! keeps the port (DESIGN.md host facts). This crate runs the filter's own
//! parser ([`optimizer_core::config::parse`]) natively on a JSON file or on
//! the filter configs inside a Kong `kong.yml` or an Envoy `envoy.yaml`
//! ([`extract`]), and says what it understood ([`summary`]) and, for Kong,
//! how big the shared-memory zone must be ([`kong_shm`]).

pub mod extract;
pub mod kong_shm;
pub mod summary;

pub use extract::{from_envoy_yaml, from_kong_yml, Found};
