//! The binary record of one slot of the allowance table: up to [`WAYS`]
//! tenant entries, versioned. Anything unreadable (damaged bytes, another
//! version's layout) decodes as empty: the worst case is asking
//! `cost-control` again, never a panic.

/// Tenants per slot.
pub const WAYS: usize = 4;
const VERSION: u8 = 1;
pub(super) const MAX_TENANT: usize = 200;
pub(super) const MAX_ID: usize = 200;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    pub tenant: String,
    /// The lease the pool spends from; empty = none.
    pub allowance_id: String,
    /// Granted minus reserved; negative after an overdraft.
    pub pool_micros: i64,
    pub expires_at_ms: u64,
    /// `cost-control` granted nothing: the budget is spent.
    pub exhausted: bool,
    /// `cost-control` could not be reached.
    pub unreachable: bool,
    /// Past a soft limit.
    pub soft: bool,
    /// Do not ask again before this (after an empty grant or a failure).
    pub retry_at_ms: u64,
    /// A worker is asking for a lease until this time.
    pub claim_until_ms: u64,
    /// Spent on credit while `cost-control` was unreachable.
    pub credit_used_micros: u64,
}

impl Entry {
    pub(super) fn new(tenant: &str) -> Self {
        Entry {
            tenant: tenant.to_string(),
            ..Entry::default()
        }
    }

    /// Holds nothing worth keeping: may give its way to another tenant.
    pub(super) fn evictable(&self, now: u64) -> bool {
        self.allowance_id.is_empty()
            && self.pool_micros == 0
            && self.credit_used_micros == 0
            && self.claim_until_ms <= now
    }
}

/// At most `max` (≤ 255) bytes of `s`, cut at a character boundary: a
/// cut inside a character made the string, and so the whole slot with
/// every tenant in it, unreadable (found by fuzzing, `allowance_write`:
/// a lease id of 200 two-byte characters from cost-control's answer).
fn put_str(out: &mut Vec<u8>, s: &str, max: usize) {
    let mut end = s.len().min(max).min(usize::from(u8::MAX));
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out.push(end as u8);
    out.extend_from_slice(&s.as_bytes()[..end]);
}

pub fn encode(entries: &[Entry]) -> Vec<u8> {
    let mut out = vec![VERSION, entries.len().min(WAYS) as u8];
    for e in entries.iter().take(WAYS) {
        put_str(&mut out, &e.tenant, MAX_TENANT);
        put_str(&mut out, &e.allowance_id, MAX_ID);
        out.extend_from_slice(&e.pool_micros.to_le_bytes());
        for v in [
            e.expires_at_ms,
            e.retry_at_ms,
            e.claim_until_ms,
            e.credit_used_micros,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.push(u8::from(e.exhausted) | u8::from(e.unreachable) << 1 | u8::from(e.soft) << 2);
    }
    out
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)?.try_into().ok().map(u64::from_le_bytes)
    }
    fn string(&mut self) -> Option<String> {
        let n = self.u8()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

/// Entries of a slot record; anything unreadable reads as empty.
pub fn decode(bytes: &[u8]) -> Vec<Entry> {
    fn inner(bytes: &[u8]) -> Option<Vec<Entry>> {
        let mut r = Reader(bytes);
        if r.u8()? != VERSION {
            return None;
        }
        let n = (r.u8()? as usize).min(WAYS);
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let tenant = r.string()?;
            let allowance_id = r.string()?;
            let pool_micros = r.u64()? as i64;
            let expires_at_ms = r.u64()?;
            let retry_at_ms = r.u64()?;
            let claim_until_ms = r.u64()?;
            let credit_used_micros = r.u64()?;
            let flags = r.u8()?;
            out.push(Entry {
                tenant,
                allowance_id,
                pool_micros,
                expires_at_ms,
                exhausted: flags & 1 != 0,
                unreachable: flags & 2 != 0,
                soft: flags & 4 != 0,
                retry_at_ms,
                claim_until_ms,
                credit_used_micros,
            });
        }
        Some(out)
    }
    inner(bytes).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by fuzzing (`allowance_write`): strings longer than the
    /// record's bound were cut inside a character, and the slot then read
    /// as empty, losing every tenant's lease.
    #[test]
    fn long_strings_are_cut_at_a_character_boundary_and_the_slot_reads_back() {
        let other = Entry::new("acme");
        let long = Entry {
            tenant: format!("x{}", "é".repeat(150)),
            allowance_id: format!("y{}", "ü".repeat(150)),
            ..Entry::default()
        };
        let back = decode(&encode(&[other.clone(), long.clone()]));
        assert_eq!(back.len(), 2, "the slot must stay readable");
        assert_eq!(back[0], other);
        assert_eq!(back[1].tenant, long.tenant[..MAX_TENANT - 1]);
        assert_eq!(back[1].allowance_id, long.allowance_id[..MAX_ID - 1]);
    }
}
