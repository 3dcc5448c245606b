//! Purges from `cost-control` (by prefix, tag or key) turned into
//! generation bumps, and the shared state that makes applying them
//! idempotent.
//!
//! **What an entry depends on.** Shared data cannot be listed, so a purge
//! never searches entries: each entry records the generation counters of
//! its scopes ([`entry_slots`], plus its tags when stored), and a purge
//! bumps the counters of the scopes it names ([`purge_slots`]). The two
//! sides are written next to each other so that they agree:
//!
//! - `key`: one URL as a user gives it, path and query (`/api/items/1?lang=en`;
//!   a leading `http://host` is dropped), normalised like the cache key
//!   (percent-encoding, parameter order, the rule's `ignore_query`). Every
//!   variant of that URL (HEAD, `Vary` headers) goes; other queries stay.
//! - `prefix`: a path and everything under it, on whole segments:
//!   `/api/items` purges `/api/items`, `/api/items/`, `/api/items/1?x=y`,
//!   `/api/items/1/parts`, not `/api/itemsX`. `/` purges the whole tenant. A
//!   value equal to a rule's `related_prefixes` entry also purges what that
//!   entry covers (so `/api/ite` works there). Entries record their first
//!   [`MAX_PREFIX_DEPTH`] ancestor directories; a deeper prefix purges its
//!   ancestor at that depth (a few more misses, never a stale hit).
//! - `tag`: a `cache-tag` / `surrogate-key` value of the stored response,
//!   compared without case.
//!
//! All of it is per tenant: the tenant is part of every counter's hash.
//!
//! **Idempotent by construction.** The snapshot lists every purge ever made
//! with its absolute `generation`. For each counter slot the filter
//! computes a fingerprint of the purges that map to it (a wrapping sum of a
//! hash of tenant, kind, value and generation), and keeps the fingerprints
//! it last applied in shared data (`purge/applied`). A slot is bumped only
//! when its fingerprint differs from the applied one, so polling the same
//! snapshot again (on any worker, or after the filter was reloaded: shared
//! data outlives the VMs) bumps nothing, and a snapshot after missed polls
//! still bumps every slot whose purges moved. The table is written after
//! the bumps: a failure in between bumps again next time, which costs a
//! miss, never a stale hit.

use std::borrow::Cow;

use crate::config::{Accounting, Config, RouteCache};
use crate::host::{Host, HostError, Level};
use crate::shared::{cas_update, fnv1a, purge_applied, purge_poll};

use super::generations::{slot, Generations, Scope};
use super::key;

/// Ancestor directories an entry records for prefix purges (besides `/`).
pub const MAX_PREFIX_DEPTH: usize = 8;

/// Changes whenever the mapping from purges to slots changes, so that a
/// filter with another mapping does not trust the version the old one
/// applied.
const MAPPING_FORMAT: &[u8] = b"purge-mapping-1";

/// Longest snapshot version kept for `since=` (cost-control's are short).
pub(super) const MAX_VERSION_LEN: usize = 200;

/// Whether this config polls `cost-control` for purges: it needs the link
/// (`accounting`), a non-zero `purge_poll_ms`, and something to purge.
pub fn polling(config: &Config) -> Option<&Accounting> {
    config.purge_poll()
}

/// Create the shared keys unless they exist (every worker's
/// `on_configure`; the first creates them).
pub fn create(host: &mut impl Host, slots: u32) -> Result<(), HostError> {
    host.shared_create(purge_applied(), &encode_applied(&vec![0; slots as usize]))?;
    host.shared_create(purge_poll(), &PollState::default().encode())?;
    Ok(())
}

// --- the entry side -----------------------------------------------------------

/// `/` and the ancestor directories of `path` (`/a/b/c` → `/a`, `/a/b`),
/// at most [`MAX_PREFIX_DEPTH`] of them.
fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    let inner = path
        .char_indices()
        .filter(|&(i, c)| c == '/' && i > 0)
        .take(MAX_PREFIX_DEPTH)
        .map(move |(i, _)| &path[..i]);
    std::iter::once("/").chain(inner)
}

/// Generation slots an entry for `path` and `query` (canonical, as
/// [`key::normalise`] gives them with the rule's `ignore_query`) depends
/// on, besides its tags: its path (writes and prefix purges bump it), its
/// URL (key purges), `/` and its ancestor directories (prefix purges), and
/// the rule's related prefixes it falls under (writes bump them).
pub fn entry_slots(
    rule: &RouteCache,
    tenant: &str,
    path: &str,
    query: &str,
    slots: u32,
) -> Vec<u32> {
    let mut s = Vec::with_capacity(3 + MAX_PREFIX_DEPTH + rule.related_prefixes.len());
    s.push(slot(tenant, Scope::Path(path), slots));
    s.push(slot(tenant, Scope::Key { path, query }, slots));
    s.extend(ancestors(path).map(|p| slot(tenant, Scope::Prefix(p), slots)));
    for p in &rule.related_prefixes {
        if path.starts_with(p.as_str()) {
            s.push(slot(tenant, Scope::Prefix(p), slots));
        }
    }
    s.sort_unstable();
    s.dedup();
    s
}

// --- the purge side -----------------------------------------------------------

/// The kinds `cost-control`'s snapshot lists (the shared wire type).
pub use optimizer_wire::PurgeKind;

/// One purge as the snapshot lists it: the latest generation of a
/// tenant's prefix, tag or key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purge {
    pub tenant: String,
    pub kind: PurgeKind,
    pub value: String,
    pub generation: u64,
}

/// What a purge needs to know about the config to find its slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub slots: u32,
    /// The distinct `ignore_query` lists of the cache rules, and the empty
    /// one: a key purge does not say which rule cached the URL, so it bumps
    /// the URL's slot under each.
    ignore_sets: Vec<Vec<String>>,
    /// Fingerprint of all of the above.
    pub fingerprint: u64,
}

impl Mapping {
    pub fn of(config: &Config) -> Mapping {
        let mut ignore_sets: Vec<Vec<String>> = vec![Vec::new()];
        for rule in config.routes.iter().filter_map(|r| r.cache.as_ref()) {
            if !ignore_sets.contains(&rule.ignore_query) {
                ignore_sets.push(rule.ignore_query.clone());
            }
        }
        let slots = config.cache_store.generation_slots;
        let joined: Vec<String> = ignore_sets.iter().map(|s| s.join("\0")).collect();
        let slots_bytes = slots.to_le_bytes();
        let mut parts: Vec<&[u8]> = vec![MAPPING_FORMAT, &slots_bytes];
        parts.extend(joined.iter().map(|s| s.as_bytes()));
        Mapping {
            slots,
            fingerprint: fnv1a(&parts),
            ignore_sets,
        }
    }
}

/// A purge value as a path and query: without `http(s)://host`, starting
/// with `/`.
fn without_origin(value: &str) -> Cow<'_, str> {
    let v = value.trim();
    let lower = v.get(..8).unwrap_or(v).to_ascii_lowercase();
    let rest = if lower.starts_with("http://") {
        &v[7..]
    } else if lower.starts_with("https://") {
        &v[8..]
    } else {
        return if v.starts_with('/') {
            Cow::Borrowed(v)
        } else {
            Cow::Owned(format!("/{v}"))
        };
    };
    match rest.find('/') {
        Some(i) => Cow::Borrowed(&rest[i..]),
        None => Cow::Borrowed("/"),
    }
}

/// `path` cut to its ancestor at [`MAX_PREFIX_DEPTH`] when it is deeper
/// (entries record no deeper ancestor).
fn capped(path: &str) -> &str {
    path.char_indices()
        .filter(|&(i, c)| c == '/' && i > 0)
        .nth(MAX_PREFIX_DEPTH - 1)
        .map_or(path, |(i, _)| &path[..i])
}

/// The generation slots a purge bumps (sorted, without repeats).
pub fn purge_slots(tenant: &str, kind: PurgeKind, value: &str, mapping: &Mapping) -> Vec<u32> {
    let n = mapping.slots;
    let mut s = Vec::new();
    match kind {
        PurgeKind::Tag => {
            // Tags are stored lowercase (`response.rs`).
            let tag = value.trim().to_ascii_lowercase();
            s.push(slot(tenant, Scope::Tag(&tag), n));
        }
        PurgeKind::Key => {
            let v = without_origin(value);
            for ignore in &mapping.ignore_sets {
                let (path, query) = key::normalise(v.as_bytes(), ignore);
                let (path, query) = (path.as_str(), query.as_str());
                s.push(slot(tenant, Scope::Key { path, query }, n));
            }
        }
        PurgeKind::Prefix => {
            let v = without_origin(value);
            let (path, _) = key::normalise(v.as_bytes(), &[]);
            let trimmed = match path.trim_end_matches('/') {
                "" => "/",
                t => t,
            };
            s.push(slot(tenant, Scope::Prefix(capped(trimmed)), n));
            // The path itself, with and without a trailing slash.
            s.push(slot(tenant, Scope::Path(trimmed), n));
            if trimmed != "/" {
                s.push(slot(tenant, Scope::Path(&format!("{trimmed}/")), n));
            }
            // A related prefix is recorded as configured, trailing slash
            // and all.
            s.push(slot(tenant, Scope::Prefix(&path), n));
            s.push(slot(tenant, Scope::Prefix(v.as_ref()), n));
        }
    }
    s.sort_unstable();
    s.dedup();
    s
}

/// Per slot, the fingerprint of the purges that map to it.
pub fn fingerprints(purges: &[Purge], mapping: &Mapping) -> Vec<u64> {
    let mut t = vec![0u64; mapping.slots as usize];
    for p in purges {
        let id = fnv1a(&[
            p.tenant.as_bytes(),
            p.kind.as_str().as_bytes(),
            p.value.as_bytes(),
            &p.generation.to_le_bytes(),
        ]);
        for s in purge_slots(&p.tenant, p.kind, &p.value, mapping) {
            if let Some(v) = t.get_mut(s as usize) {
                *v = v.wrapping_add(id);
            }
        }
    }
    t
}

fn encode_applied(t: &[u64]) -> Vec<u8> {
    t.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The applied fingerprints; damaged bytes read as what they can (the
/// slots that then differ are bumped once more: extra misses, no harm).
fn read_applied(host: &impl Host, slots: u32) -> Vec<u64> {
    let bytes = match host.shared_get(purge_applied()) {
        Ok(Some((v, _))) => v,
        Ok(None) => Vec::new(),
        Err(e) => {
            host.log(
                Level::Warn,
                &format!("purges: cannot read the applied table ({e:?}); re-applying"),
            );
            Vec::new()
        }
    };
    if bytes.len() != slots as usize * 8 {
        host.log(
            Level::Info,
            &format!(
                "purges: applied table has {} bytes, expected {} (new or resized); re-applying",
                bytes.len(),
                slots as usize * 8
            ),
        );
    }
    let mut t: Vec<u64> = bytes
        .chunks_exact(8)
        .map(|c| {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            u64::from_le_bytes(b)
        })
        .collect();
    t.resize(slots as usize, 0);
    t
}

/// Bump the slots whose purges changed since they were last applied, then
/// record what is applied. Returns how many slots were bumped. `hint`:
/// the epoch counter ([`Generations::bump`]).
pub fn apply(
    host: &mut impl Host,
    purges: &[Purge],
    mapping: &Mapping,
    hint: Option<u32>,
) -> Result<usize, HostError> {
    let want = fingerprints(purges, mapping);
    let applied = read_applied(host, mapping.slots);
    let changed: Vec<u32> = want
        .iter()
        .zip(&applied)
        .enumerate()
        .filter(|(_, (w, a))| w != a)
        .filter_map(|(i, _)| u32::try_from(i).ok())
        .collect();
    if changed.is_empty() {
        return Ok(0);
    }
    Generations::bump(host, mapping.slots, &changed, hint)?;
    let bytes = encode_applied(&want);
    cas_update(host, purge_applied(), |_| Some(bytes.clone()))?;
    Ok(changed.len())
}

pub use super::snapshot::{
    claim, finish, parse_snapshot, query_value, InFlight, PollEnd, PollState, Poller, Snapshot,
};

#[cfg(test)]
#[path = "purges_tests.rs"]
pub(super) mod tests;
