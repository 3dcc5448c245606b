//! Re-exports every `wasm_*`/`wasi_*`/`wasmtime_*` C function of
//! `wasmtime-c-api-impl`, so the staticlib (`libwasmtime.a`) carries them.
pub use wasmtime_c_api::*;
