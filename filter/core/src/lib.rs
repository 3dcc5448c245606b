//! Pure logic of the API cost optimizer filter. Nothing here calls
//! proxy-wasm: the gateway is reached only through [`host::Host`], so every
//! decision is tested natively (a native binary that touched a proxy-wasm
//! host call would not even link).

#[cfg(test)]
mod alloc_count;
#[cfg(test)]
#[global_allocator]
static ALLOCATOR: alloc_count::Counting = alloc_count::Counting;

pub mod batch;
pub mod cache;
pub mod coalesce;
pub mod config;
pub mod cost;
pub mod decimal;
pub mod header_list;
pub mod header_pairs;
pub mod headers;
pub mod held_counts;
pub mod host;
pub mod identity;
pub mod limit;
pub mod mem_host;
pub mod metrics;
pub mod money;
pub mod pipeline;
pub mod prompt;
pub mod request_id;
pub mod route;
pub mod routes;
pub mod shared;
pub mod small_blocks;

/// Version stamped into logs at VM start.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
