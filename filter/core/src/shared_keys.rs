//! Names of the filter's shared-data keys. Every key starts with the
//! filter's prefix, because shared data is one namespace for all filters
//! of a VM id (DESIGN.md host facts).

pub const PREFIX: &str = "cost_optimizer";

pub fn gen_epoch() -> String {
    format!("{PREFIX}/gen/epoch")
}

pub fn gen_table() -> String {
    format!("{PREFIX}/gen/table")
}

/// Per generation slot, the fingerprint of the purges last applied to it.
pub fn purge_applied() -> String {
    format!("{PREFIX}/purge/applied")
}

/// Who polls `cost-control` for purges, when next, and the version seen.
pub fn purge_poll() -> String {
    format!("{PREFIX}/purge/poll")
}

pub fn cache_index(slot: u32) -> String {
    format!("{PREFIX}/c/i/{slot}")
}

pub fn cache_data(slot: u32, way: u32) -> String {
    format!("{PREFIX}/c/d/{slot}/{way}")
}

/// FNV-1a, for spreading names over fixed tables (not for security: a
/// collision only makes two scopes share a slot).
pub fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}
