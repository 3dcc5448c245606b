//! This gateway's share of each tenant's budget, in shared data so every
//! worker spends from the same pool.
//!
//! `cost-control` hands out allowances (leases on part of a tenant's
//! remaining budget); a gateway spends only what it leased, so any number
//! of gateways together never overspend. A request reserves its estimated
//! cost from the pool (compare-and-swap), its response settles the actual
//! cost, and the timer asks for a new lease when the pool runs low.
//!
//! Strictness rules kept here:
//! - When a new lease arrives, what was left of the previous one is
//!   dropped from the pool (a debt is kept). `cost-control` returns that
//!   rest to the budget when the old lease expires; spending it here too
//!   would count it twice.
//! - A lease is not used past its expiry (minus a margin), for the same
//!   reason.
//!
//! Layout: a fixed number of slot keys created at configure time (Envoy
//! cannot insert a key atomically), each holding up to [`WAYS`] tenants in
//! a versioned binary record. Damaged bytes or another version's record
//! read as empty: the worst case is asking `cost-control` again.

use optimizer_wire::{AllowanceGrant, AllowanceRequest, Micros};

pub use super::budget_record::{decode, encode, Entry, WAYS};
use super::budget_slice::{self, Slice};
use crate::config::OnUnavailable;
use crate::host::{Host, HostError};
use crate::shared::cas_update;
use crate::shared::fnv1a;

use super::budget_record::MAX_ID;

use crate::shared::budget_slot as slot_key;

fn slot_of(tenant: &str, slots: u32) -> u32 {
    (fnv1a(&[b"budget", tenant.as_bytes()]) % u64::from(slots.max(1))) as u32
}

/// Create every slot, empty, unless it exists.
pub fn create(host: &mut impl Host, slots: u32) -> Result<(), HostError> {
    let empty = encode(&[]);
    for s in 0..slots {
        host.shared_create(&slot_key(s), &empty)?;
    }
    Ok(())
}

/// Read-modify-write the tenant's entry. `change` sees the entry (a fresh
/// one when the tenant has none yet) and returns whether to write.
fn update<R>(
    host: &mut impl Host,
    slots: u32,
    tenant: &str,
    now: u64,
    create: bool,
    mut change: impl FnMut(&mut Entry) -> (bool, R),
) -> Result<Option<R>, HostError> {
    let key = slot_key(slot_of(tenant, slots));
    let mut result = None;
    let mut step = |bytes: &[u8]| {
        let mut entries = decode(bytes);
        let index = match entries.iter().position(|e| e.tenant == tenant) {
            Some(i) => i,
            None if !create => {
                result = None;
                return None;
            }
            None if entries.len() < WAYS => {
                entries.push(Entry::new(tenant));
                entries.len() - 1
            }
            None => match entries.iter().position(|e| e.evictable(now)) {
                Some(i) => {
                    entries[i] = Entry::new(tenant);
                    i
                }
                None => {
                    result = None;
                    return None; // slot full of live tenants
                }
            },
        };
        let (write, r) = change(&mut entries[index]);
        result = Some(r);
        write.then(|| encode(&entries))
    };
    match cas_update(host, &key, &mut step) {
        Err(HostError::NotFound) => {
            host.shared_create(&key, &encode(&[]))?;
            cas_update(host, &key, &mut step)?;
        }
        other => other?,
    }
    Ok(result)
}

/// One tenant's entry as it is now (for tests and debug).
pub fn read(host: &impl Host, slots: u32, tenant: &str) -> Option<Entry> {
    let (bytes, _) = host.shared_get(&slot_key(slot_of(tenant, slots))).ok()??;
    decode(&bytes).into_iter().find(|e| e.tenant == tenant)
}

/// How a request may spend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// `high` priority and the tenant is not a hard stop: may go past the
    /// budget (with a warning).
    pub allow_overdraft: bool,
    pub on_unavailable: OnUnavailable,
    pub credit_micros: u64,
    /// Ask for more below this pool.
    pub low_water_micros: u64,
    /// Stop using a lease this long before it expires (and renew it).
    pub renew_before_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Reserved from the lease.
    Granted,
    /// Over budget, reserved anyway (pool negative): pass with a warning.
    Overdraft,
    /// Reserved from the outage credit (`fail_open`).
    Credit,
    /// The budget is spent: refuse (429).
    Exhausted,
    /// No lease yet (or the pool ran dry): wait for the timer's lease.
    Pending,
    /// `cost-control` unreachable and no credit (or `fail_closed`): 503.
    Unavailable,
    /// No room in the shared table for this tenant: treated as
    /// unavailable by the caller.
    TableFull,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reserve {
    pub kind: Kind,
    /// The lease the reservation is drawn from (reported with the spend).
    pub allowance_id: Option<String>,
    pub soft: bool,
    /// The pool is low (or the lease near its end): ask for a lease.
    pub needs_refill: bool,
}

impl Reserve {
    /// Whether the request holds a reservation to settle later.
    pub fn reserved(&self) -> bool {
        matches!(self.kind, Kind::Granted | Kind::Overdraft | Kind::Credit)
    }
}

/// Reserve `estimate` for a request of `tenant`.
pub fn reserve(
    host: &mut impl Host,
    slots: u32,
    tenant: &str,
    estimate: u64,
    now: u64,
    p: Policy,
) -> Result<Reserve, HostError> {
    reserve_in(host, (slots, tenant), estimate, now, p, None, false).map(|(r, _)| r)
}

/// [`reserve`], in the same compare-and-swap handing `back` the worker's
/// old slice of the tenant's pool (added to the pool when it is of the
/// lease the pool still holds) and, on a grant, taking a new slice
/// (`budget_slice::size`). Returns the reservation and the new slice.
pub fn reserve_sliced(
    host: &mut impl Host,
    slots: u32,
    tenant: &str,
    estimate: u64,
    now: u64,
    p: Policy,
    back: Option<&Slice>,
) -> Result<(Reserve, Option<Slice>), HostError> {
    reserve_in(host, (slots, tenant), estimate, now, p, back, true)
}

fn reserve_in(
    host: &mut impl Host,
    (slots, tenant): (u32, &str),
    estimate: u64,
    now: u64,
    p: Policy,
    back: Option<&Slice>,
    slicing: bool,
) -> Result<(Reserve, Option<Slice>), HostError> {
    let est = i64::try_from(estimate).unwrap_or(i64::MAX);
    let out = update(host, slots, tenant, now, true, |e| {
        let mut created = false;
        if e.allowance_id.is_empty() && e.pool_micros == 0 && e.expires_at_ms == 0 {
            created = true;
            e.expires_at_ms = 1; // marks the entry as written
        }
        // A lease near its end is not spent from any more.
        let expired =
            !e.allowance_id.is_empty() && now.saturating_add(p.renew_before_ms) >= e.expires_at_ms;
        if expired {
            e.allowance_id.clear();
            e.pool_micros = e.pool_micros.min(0);
        }
        let gave_back = give_back_slice(e, back);
        let id = (!e.allowance_id.is_empty()).then(|| e.allowance_id.clone());
        let mut r = Reserve {
            kind: Kind::Pending,
            allowance_id: None,
            soft: e.soft,
            needs_refill: false,
        };
        if id.is_some() && e.pool_micros >= est {
            e.pool_micros -= est;
            r.kind = Kind::Granted;
            r.allowance_id = id;
        } else if e.unreachable {
            let credit_ok = p.on_unavailable == OnUnavailable::FailOpen
                && e.credit_used_micros.saturating_add(estimate) <= p.credit_micros;
            if credit_ok {
                // Saturating, like the check above: with a credit of
                // u64::MAX (money has no upper bound in the config) the
                // check passes for any estimate, and a damaged record's
                // credit_used_micros then overflowed (found by fuzzing,
                // `allowance`).
                e.credit_used_micros = e.credit_used_micros.saturating_add(estimate);
                r.kind = Kind::Credit;
            } else {
                r.kind = Kind::Unavailable;
            }
        } else if e.exhausted {
            if p.allow_overdraft {
                // Saturating: the pool is read from shared data (as in
                // `settle`), where damage can leave it near i64::MIN.
                e.pool_micros = e.pool_micros.saturating_sub(est);
                r.kind = Kind::Overdraft;
                r.allowance_id = id;
            } else {
                r.kind = Kind::Exhausted;
            }
        }
        let mut taken = None;
        if slicing && r.kind == Kind::Granted {
            let take = budget_slice::size(e.pool_micros, p.low_water_micros, estimate);
            if take > 0 {
                e.pool_micros -= take;
                taken = Some(Slice {
                    allowance_id: e.allowance_id.clone(),
                    micros: take,
                    soft: e.soft,
                    // Never past the point where the pool stops spending
                    // this lease.
                    until_ms: now
                        .saturating_add(budget_slice::SLICE_MS)
                        .min(e.expires_at_ms.saturating_sub(p.renew_before_ms)),
                });
            }
        }
        let low = e.pool_micros < i64::try_from(p.low_water_micros).unwrap_or(i64::MAX);
        r.needs_refill = low || e.allowance_id.is_empty();
        let write = r.kind != Kind::Pending || created || expired || gave_back;
        (write, (r, taken))
    })?;
    Ok(out.unwrap_or((
        Reserve {
            kind: Kind::TableFull,
            allowance_id: None,
            soft: false,
            needs_refill: false,
        },
        None,
    )))
}

/// Add a worker's slice back to the pool when it is of the lease the pool
/// holds; a slice of a replaced (or dropped) lease is not: `cost-control`
/// returns that lease's unspent rest itself. Whether the entry changed.
fn give_back_slice(e: &mut Entry, back: Option<&Slice>) -> bool {
    match back {
        Some(s) if !s.allowance_id.is_empty() && s.allowance_id == e.allowance_id => {
            e.pool_micros = e.pool_micros.saturating_add(s.micros);
            s.micros != 0
        }
        _ => false,
    }
}

/// Give a slice whose time is up back to the tenant's pool (the worker's
/// timer). A tenant with no entry any more takes nothing back.
pub fn return_slice(
    host: &mut impl Host,
    slots: u32,
    tenant: &str,
    slice: &Slice,
    now: u64,
) -> Result<(), HostError> {
    update(host, slots, tenant, now, false, |e| {
        (give_back_slice(e, Some(slice)), ())
    })?;
    Ok(())
}

/// Where a reservation was drawn from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source<'a> {
    /// The pool, under this lease (`None`: an overdraft with no lease).
    Lease(Option<&'a str>),
    /// The outage credit (`fail_open` while cost-control was unreachable).
    Credit,
}

/// The response is in: give back `estimate − actual` (or take more) to
/// where the reservation came from. When the lease it was drawn from has
/// been replaced since, a refund is not added to the new lease's pool:
/// cost-control returns the old lease's unspent rest itself when that
/// lease expires, so adding it here would count it twice. An extra cost
/// is always taken.
pub fn settle(
    host: &mut impl Host,
    slots: u32,
    tenant: &str,
    (estimate, actual): (u64, u64),
    source: Source<'_>,
    now: u64,
) -> Result<(), HostError> {
    if estimate == actual {
        return Ok(());
    }
    let delta = i64::try_from(estimate)
        .unwrap_or(i64::MAX)
        .saturating_sub(i64::try_from(actual).unwrap_or(i64::MAX));
    update(host, slots, tenant, now, false, |e| {
        match source {
            Source::Lease(id) => {
                let same_lease = id.unwrap_or("") == e.allowance_id;
                if !same_lease && delta > 0 {
                    return (false, ());
                }
                e.pool_micros = e.pool_micros.saturating_add(delta);
            }
            Source::Credit => {
                e.credit_used_micros = e
                    .credit_used_micros
                    .saturating_sub(estimate)
                    .saturating_add(actual)
            }
        }
        (true, ())
    })?;
    Ok(())
}

/// Take the right to ask `cost-control` for a lease for `tenant`: one
/// worker at a time (until `now + claim_ms`), not before a retry time,
/// and only when the pool is low or the lease near its end.
pub fn claim_refill(
    host: &mut impl Host,
    slots: u32,
    tenant: &str,
    now: u64,
    claim_ms: u64,
    p: Policy,
) -> Result<bool, HostError> {
    let out = update(host, slots, tenant, now, false, |e| {
        let held = e.claim_until_ms > now;
        let waiting = (e.exhausted || e.unreachable) && now < e.retry_at_ms;
        let near_end = e.allowance_id.is_empty()
            || now.saturating_add(p.renew_before_ms.saturating_mul(2)) >= e.expires_at_ms;
        let low = e.pool_micros < i64::try_from(p.low_water_micros).unwrap_or(i64::MAX);
        if held || waiting || !(low || near_end) {
            return (false, false);
        }
        e.claim_until_ms = now + claim_ms;
        (true, true)
    })?;
    Ok(out.unwrap_or(false))
}

/// What the pool takes of `cost-control`'s answer to `POST /v1/allowances`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub allowance_id: Option<String>,
    pub granted_micros: i64,
    pub expires_at_ms: i64,
    pub soft: bool,
    pub hard: bool,
}

/// Read the answer as `optimizer_wire::AllowanceGrant`, the type
/// `cost-control` writes it with.
pub fn parse_grant(body: &[u8]) -> Option<Grant> {
    let g: AllowanceGrant<serde::de::IgnoredAny> = serde_json::from_slice(body).ok()?;
    (g.granted_micros >= 0).then_some(Grant {
        allowance_id: g.allowance_id,
        granted_micros: g.granted_micros,
        expires_at_ms: g.expires_at_ms,
        soft: g.soft,
        hard: g.hard,
    })
}

/// The body of `POST /v1/allowances` (`optimizer_wire::AllowanceRequest`,
/// the type `cost-control` reads it with).
pub fn lease_request(gateway_id: &str, tenant: &str, want_micros: u64, ttl_secs: u32) -> Vec<u8> {
    serde_json::to_vec(&AllowanceRequest {
        gateway_id,
        tenant,
        service: "",
        want_micros: Micros(want_micros),
        ttl_secs: Some(ttl_secs),
    })
    .unwrap_or_default()
}

/// Put a grant into the pool. A new lease replaces the old one: its
/// unspent rest is dropped here (it returns to the budget when the old
/// lease expires at `cost-control`), a debt from overdrafts is kept.
pub fn apply_grant(
    host: &mut impl Host,
    slots: u32,
    tenant: &str,
    g: &Grant,
    now: u64,
    retry_ms: u64,
) -> Result<(), HostError> {
    update(host, slots, tenant, now, true, |e| {
        e.claim_until_ms = 0;
        e.unreachable = false;
        e.credit_used_micros = 0;
        e.soft = g.soft || g.hard;
        match (&g.allowance_id, g.granted_micros > 0) {
            (Some(id), true) => {
                e.allowance_id = id.chars().take(MAX_ID).collect();
                e.pool_micros = e.pool_micros.min(0).saturating_add(g.granted_micros);
                e.expires_at_ms = u64::try_from(g.expires_at_ms).unwrap_or(0).max(1);
                e.exhausted = false;
            }
            _ => {
                e.exhausted = true;
                e.retry_at_ms = now + retry_ms;
            }
        }
        (true, ())
    })?;
    Ok(())
}

/// The lease call failed: serve by the rules' `on_unavailable` until a
/// retry succeeds.
pub fn apply_failure(
    host: &mut impl Host,
    slots: u32,
    tenant: &str,
    now: u64,
    retry_ms: u64,
) -> Result<(), HostError> {
    update(host, slots, tenant, now, true, |e| {
        e.claim_until_ms = 0;
        e.unreachable = true;
        e.retry_at_ms = now + retry_ms;
        (true, ())
    })?;
    Ok(())
}

#[cfg(test)]
#[path = "budget_tests.rs"]
mod tests;
