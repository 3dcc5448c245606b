//! The proxy-wasm module: root and HTTP contexts, and the host adapter.
//! All decisions are made by `optimizer_core`; this crate only carries
//! calls between the gateway and the core.

mod abi;
mod contexts;
mod heap;
mod held_replies;
mod host_adapter;
mod local_reply;
mod sdk;
