//! A worker's slice of a tenant's pool: money taken from the shared pool
//! in the same compare-and-swap as a reservation, so the next requests of
//! that tenant on this worker reserve without touching shared data.
//!
//! Why (issue 18): a budgeted request read and wrote the tenant's shared
//! record (one read returning bytes, one compare-and-swap), about 21,000
//! of the 256,700 instructions Envoy spent on the bench's J.
//!
//! What keeps the budget strict:
//! - A slice is money of one lease, taken out of the pool: the pool and
//!   every worker's slices never add up to more than the lease held.
//! - Slices come only from what lies above the low-water mark, an eighth
//!   of it at a time: near the end of a lease (or of a budget) requests
//!   reserve from the shared pool one by one, as before.
//! - A slice lives at most [`SLICE_MS`] and never past its lease's usable
//!   end; the worker's timer then gives what is left back to the pool,
//!   unless the lease was replaced (`cost-control` returns an old lease's
//!   unspent rest itself). So money another worker could spend sits in a
//!   slice for at most about a second.
//! - A worker that stops (its VM torn down) loses its slices: that money
//!   stays unspent and returns to the budget when its lease expires.

use std::collections::HashMap;

/// How long a slice may be spent from before its rest goes back.
pub const SLICE_MS: u64 = 1_000;

/// A slice holds at most this many of the estimates it was taken for.
pub const SLICE_REQUESTS: i64 = 64;

/// Tenants one worker holds slices of; others reserve in shared data.
pub const MAX_TENANTS: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slice {
    /// The lease it was taken from (reported with each spend).
    pub allowance_id: String,
    /// What is left of it; negative when a settled cost went over.
    pub micros: i64,
    /// The lease was past its soft limit when the slice was taken.
    pub soft: bool,
    /// Spent from until this time.
    pub until_ms: u64,
}

/// A grant from a slice: the lease to report against and its soft flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalGrant {
    pub allowance_id: String,
    pub soft: bool,
}

/// One worker's slices, by tenant.
#[derive(Debug, Default)]
pub struct Slices {
    by_tenant: HashMap<String, Slice>,
}

impl Slices {
    /// Reserve `estimate` from the tenant's slice, if it has one in time
    /// that holds enough.
    pub fn spend(&mut self, tenant: &str, estimate: u64, now: u64) -> Option<LocalGrant> {
        let est = i64::try_from(estimate).ok()?;
        let s = self.by_tenant.get_mut(tenant)?;
        if now >= s.until_ms || s.micros < est {
            return None;
        }
        s.micros -= est;
        Some(LocalGrant {
            allowance_id: s.allowance_id.clone(),
            soft: s.soft,
        })
    }

    /// The tenant's slice, to hand back in the next reservation that
    /// reaches shared data.
    pub fn get(&self, tenant: &str) -> Option<&Slice> {
        self.by_tenant.get(tenant)
    }

    /// After a reservation in shared data: the slice it handed back is
    /// gone, and the one it took (if any) replaces it.
    pub fn replace(&mut self, tenant: &str, taken: Option<Slice>) {
        match taken {
            Some(s) => {
                if let Some(old) = self.by_tenant.get_mut(tenant) {
                    *old = s;
                } else if self.by_tenant.len() < MAX_TENANTS {
                    self.by_tenant.insert(tenant.to_string(), s);
                }
            }
            None => {
                self.by_tenant.remove(tenant);
            }
        }
    }

    /// Settle a request drawn from lease `allowance_id` in the tenant's
    /// slice of that lease: its rest (`delta` > 0) goes back into the
    /// slice, an extra cost (`delta` < 0) is taken from it. `false` when
    /// there is no such slice (the caller settles in shared data).
    pub fn settle(&mut self, tenant: &str, allowance_id: Option<&str>, delta: i64) -> bool {
        match (self.by_tenant.get_mut(tenant), allowance_id) {
            (Some(s), Some(id)) if s.allowance_id == id => {
                s.micros = s.micros.saturating_add(delta);
                true
            }
            _ => false,
        }
    }

    /// Take out the slices whose time is up (`until_ms` ≤ `now`), to give
    /// back to the pool.
    pub fn take_due(&mut self, now: u64) -> Vec<(String, Slice)> {
        let due: Vec<String> = self
            .by_tenant
            .iter()
            .filter(|(_, s)| s.until_ms <= now)
            .map(|(t, _)| t.clone())
            .collect();
        due.into_iter()
            .filter_map(|t| self.by_tenant.remove(&t).map(|s| (t, s)))
            .collect()
    }

    /// Whether a tenant with no slice yet may be given one.
    pub fn has_room(&self) -> bool {
        self.by_tenant.len() < MAX_TENANTS
    }

    pub fn is_empty(&self) -> bool {
        self.by_tenant.is_empty()
    }
}

/// How much of the pool a reservation of `estimate` takes as a new slice:
/// an eighth of what lies above the low-water mark after it, at most
/// [`SLICE_REQUESTS`] estimates, and nothing when that is less than one
/// estimate (or no estimate: a free request needs no slice).
pub fn size(pool_after: i64, low_water: u64, estimate: u64) -> i64 {
    let est = i64::try_from(estimate).unwrap_or(i64::MAX);
    if est <= 0 {
        return 0;
    }
    let low = i64::try_from(low_water).unwrap_or(i64::MAX);
    let headroom = pool_after.saturating_sub(low);
    let take = (headroom / 8).min(est.saturating_mul(SLICE_REQUESTS));
    if take >= est {
        take
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice(micros: i64, until_ms: u64) -> Slice {
        Slice {
            allowance_id: "a1".into(),
            micros,
            soft: false,
            until_ms,
        }
    }

    #[test]
    fn a_slice_grants_until_it_is_spent_or_its_time_is_up() {
        let mut s = Slices::default();
        assert_eq!(s.spend("t", 10, 0), None, "no slice yet");
        s.replace("t", Some(slice(25, 1_000)));
        assert!(s.spend("t", 10, 0).is_some());
        assert!(s.spend("t", 10, 999).is_some());
        assert_eq!(s.spend("t", 10, 999), None, "5 left, less than 10");
        assert_eq!(s.get("t").unwrap().micros, 5);
        s.replace("t", Some(slice(25, 1_000)));
        assert_eq!(s.spend("t", 10, 1_000), None, "its time is up");
        assert_eq!(s.spend("other", 1, 0), None, "slices are per tenant");
    }

    #[test]
    fn settling_goes_to_the_slice_of_the_same_lease_only() {
        let mut s = Slices::default();
        s.replace("t", Some(slice(100, 1_000)));
        assert!(s.settle("t", Some("a1"), 30));
        assert!(s.settle("t", Some("a1"), -200));
        assert_eq!(s.get("t").unwrap().micros, -70);
        assert!(!s.settle("t", Some("a2"), 5), "another lease's request");
        assert!(!s.settle("t", None, 5), "an overdraft without a lease");
        assert!(!s.settle("u", Some("a1"), 5), "no slice of that tenant");
    }

    #[test]
    fn due_slices_are_taken_out_and_others_stay() {
        let mut s = Slices::default();
        s.replace("old", Some(slice(7, 500)));
        s.replace("new", Some(slice(9, 2_000)));
        let due = s.take_due(500);
        assert_eq!(due, vec![("old".to_string(), slice(7, 500))]);
        assert!(s.get("old").is_none());
        assert!(s.get("new").is_some());
        s.replace("new", None);
        assert!(s.is_empty());
    }

    #[test]
    fn a_worker_holds_slices_of_a_bounded_number_of_tenants() {
        let mut s = Slices::default();
        for i in 0..MAX_TENANTS + 10 {
            s.replace(&format!("t{i}"), Some(slice(1, 1_000)));
        }
        assert_eq!(s.by_tenant.len(), MAX_TENANTS);
        assert!(s.spend(&format!("t{}", MAX_TENANTS + 1), 1, 0).is_none());
    }

    #[test]
    fn slices_come_from_above_the_low_water_mark_an_eighth_at_a_time() {
        // Far above the mark: capped at SLICE_REQUESTS estimates.
        assert_eq!(size(100_000_000, 20_000_000, 2_000), 64 * 2_000);
        // An eighth of the headroom.
        assert_eq!(size(1_080_000, 1_000_000, 2_000), 10_000);
        // Less than one estimate of headroom: no slice.
        assert_eq!(size(1_010_000, 1_000_000, 2_000), 0);
        assert_eq!(size(500, 1_000, 2_000), 0, "below the mark");
        assert_eq!(size(-5, 0, 2_000), 0, "a debt");
        assert_eq!(size(1_000_000, 0, 0), 0, "a free request");
        assert_eq!(size(i64::MAX, 0, u64::MAX), 0, "no overflow");
    }
}
