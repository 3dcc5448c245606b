//! In-flight coalescing (DESIGN.md step 4): identical requests that arrive
//! while one is in flight wait for it and get its answer.
//!
//! `table` holds the cross-worker state in shared data; `waiters` the
//! followers paused on this worker. The pipeline's coalesce stage decides
//! roles, the leader's hooks publish or fail, and the timer answers or
//! releases followers on other workers.

pub mod table;
pub mod waiters;

use crate::cache::key::Key;

/// The identity of a coalescable request: the cache key (tenant
/// included) plus the method as sent (a HEAD never answers a GET) and the
/// idempotency key of a write.
pub fn key(primary: &Key, method: &str, idempotency_key: Option<&str>) -> Key {
    let idempotency_key = idempotency_key.unwrap_or("");
    let mut m =
        String::with_capacity(6 + method.len() + idempotency_key.len() + primary.material.len());
    for part in [
        "co\n",
        method,
        "\n",
        idempotency_key,
        "\n",
        &primary.material,
    ] {
        m.push_str(part);
    }
    Key::from_material(m)
}

pub fn slot_of(key: &Key, slots: u32) -> u32 {
    (key.tag() % u64::from(slots.max(1))) as u32
}
