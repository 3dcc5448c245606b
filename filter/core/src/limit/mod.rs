//! Rate limiting (issue 6), the pure part: the arithmetic of the two
//! algorithms, the gateway-wide table of their states in shared data, the
//! per-worker queue of paused medium-priority requests, and the response
//! header fields.
//!
//! - `algo`: [`Algorithm`], [`Decision`], and the pure [`decide`] /
//!   [`peek_wait_ms`] over a slot's record (`bucket` and `window` hold the
//!   integer arithmetic of each algorithm).
//! - `table`: the fixed table `cost_optimizer/l/{slot}`, updated by a
//!   bounded compare-and-swap loop; errors are for the caller to fail open.
//! - `lease`: a worker's chunk of tokens from a large bucket, so most of
//!   its admissions make no host call.
//! - `queue`: [`Queue`] of [`Queued`] requests, priority then FIFO.
//! - `headers`: `RateLimit-Policy`, `RateLimit`, `Retry-After`, 429 body.

pub mod algo;
mod bucket;
pub mod headers;
pub mod lease;
pub mod queue;
pub mod table;
mod window;

pub use algo::{decide, peek_wait_ms, Algorithm, Decision};
pub use queue::{Full, Queue, Queued};
