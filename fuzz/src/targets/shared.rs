//! Records in shared data, as another version of the filter (or a damaged
//! write) may have left them. Each target plants the input's bytes under
//! the real key in an in-memory host and drives the functions that read
//! and rewrite that record on a real gateway, so the reading code runs
//! exactly as it does there.

use optimizer_core::cache::entry::{Body, Entry};
use optimizer_core::cache::generations::Generations;
use optimizer_core::cache::key::Key;
use optimizer_core::cache::l2;
use optimizer_core::cache::snapshot::{self, PollEnd, PollState};
use optimizer_core::coalesce::table as coalesce;
use optimizer_core::config::{OnUnavailable, Store};
use optimizer_core::cost::budget::{self, Grant, Policy, Source};
use optimizer_core::header_list::HeaderList;
use optimizer_core::header_pairs;
use optimizer_core::host::Host;
use optimizer_core::limit::{self, Algorithm};
use optimizer_core::mem_host::MemHost;
use optimizer_core::route::health::RECORD_LEN;
use optimizer_core::route::{self, BreakerConfig, Table};
use optimizer_core::shared;

use crate::input::{put_piece, text, Input};

const NOW: u64 = 1_741_608_000_000;
/// Instants the host clock can give (now, a day on, and the year 2100):
/// the records are fuzzed, the clock is not.
const NOWS: [u64; 3] = [NOW, NOW + 86_400_000, 4_102_444_800_000];

fn plant(host: &mut MemHost, key: &str, bytes: &[u8]) {
    // A plain put (no CAS) of any bytes: what a foreign writer can do.
    let _ = host.shared_put(key, bytes);
}

fn sample_entry(key: &str) -> Entry {
    Entry {
        key: key.to_string(),
        stored_ms: NOW,
        initial_age_s: 3,
        fresh_until_ms: NOW + 60_000,
        swr_until_ms: NOW + 70_000,
        sie_until_ms: NOW + 600_000,
        keep_until_ms: NOW + 3_600_000,
        fetch_ms: 120,
        gens: vec![(1, 2), (7, 0)],
        body: Body::Response {
            status: 200,
            headers: vec![
                ("content-type".into(), b"application/json".to_vec()),
                ("etag".into(), b"\"v1\"".to_vec()),
            ],
            body: br#"{"id":1}"#.to_vec(),
        },
    }
}

// --- stored cache entries --------------------------------------------------------

/// `Entry::decode`; what it reads must encode back to the same bytes (the
/// format has one spelling per entry, so a mismatch means a field was
/// read differently from how it is written).
pub fn cache_entry(data: &[u8]) {
    if let Some(e) = Entry::decode(data) {
        assert_eq!(e.encode(), data, "entry does not re-encode to its bytes");
        let _ = e.header("etag");
        let _ = e.usable_until_ms();
        let _ = e.weight();
    }
}

pub fn cache_entry_seeds() -> Vec<Vec<u8>> {
    let mut vary = sample_entry("v1\nt=a\nm=GET\np=/x\nq=");
    vary.body = Body::Vary {
        names: vec!["accept-language".into(), "accept".into()],
    };
    vec![sample_entry("k").encode(), vary.encode()]
}

// --- header maps from the host ---------------------------------------------------

/// The host's header-map encoding (`proxy_get_header_map_pairs`, and the
/// filter's own replies): decoded into pairs, and kept and read in place
/// as a `HeaderList`, the two must agree.
pub fn header_pairs(data: &[u8]) {
    let pairs = header_pairs::decode(data);
    let list = HeaderList::from_wire(data.to_vec());
    assert_eq!(
        pairs.is_some(),
        list.is_some(),
        "one reading refused what the other kept"
    );
    if let (Some(pairs), Some(list)) = (pairs, list) {
        assert_eq!(
            list.to_pairs(),
            pairs,
            "a list reads other pairs than decoding"
        );
        for (name, _) in &pairs {
            let first = pairs.iter().find(|(k, _)| k.eq_ignore_ascii_case(name));
            assert_eq!(list.get(name), first.map(|(_, v)| v.as_slice()));
        }
    }
}

pub fn header_pairs_seeds() -> Vec<Vec<u8>> {
    vec![header_pairs::encode(&[
        (":status", b"200"),
        ("cache-control", b"max-age=60"),
        ("x", b""),
    ])]
}

// --- the cache index and its data ------------------------------------------------

/// A slot's index record and one way's data: lookup (with the touch it
/// may write), the refresh lease, storing a new entry over them, and the
/// live-entry count. Input: ways (byte), then the index record and the
/// data record as u16-length pieces.
pub fn cache_index(data: &[u8]) {
    let mut input = Input::new(data);
    let ways = u32::from(input.u8() % 9);
    let way = u32::from(input.u8()) % ways.max(1);
    let index = input.piece();
    let entry = input.rest();
    let store = small_store(ways);
    let key = Key::from_material("k".to_string());
    let slot = l2::slot_of(&key, &store);
    let mut host = MemHost::new();
    plant(&mut host, &shared::cache_index(slot), index);
    plant(&mut host, &shared::cache_data(slot, way), entry);
    for now in NOWS {
        if let Some(found) = l2::lookup(&mut host, &store, &key, now) {
            let _ = l2::claim_refresh(&mut host, &store, &found, &key, now, now.saturating_add(1));
        }
        let _ = l2::live_entries(&host, &store, now);
    }
    let _ = l2::store_entry(&mut host, &store, &key, &sample_entry("k"), NOW);
    let _ = l2::lookup(&mut host, &store, &key, NOW);
}

/// The cache store both the index target and its seeds use: 4 slots of
/// `ways` ways.
fn small_store(ways: u32) -> Store {
    Store {
        slots: 4,
        ways,
        max_entry_bytes: 65_536,
        l1_max_entries: 16,
        l1_max_bytes: 65_536,
        generation_slots: 16,
    }
}

pub fn cache_index_seeds() -> Vec<Vec<u8>> {
    // A real index as `store_entry` writes it, and the entry it points at.
    let store = small_store(4);
    let key = Key::from_material("k".to_string());
    let slot = l2::slot_of(&key, &store);
    let mut host = MemHost::new();
    let _ = l2::create(&mut host, &store);
    let _ = l2::store_entry(&mut host, &store, &key, &sample_entry("k"), NOW);
    let index = host
        .shared_get(&shared::cache_index(slot))
        .ok()
        .flatten()
        .map(|(b, _)| b)
        .unwrap_or_default();
    let mut out = vec![4u8, 0];
    put_piece(&mut out, &index);
    out.extend_from_slice(&sample_entry("k").encode());
    vec![out]
}

// --- coalescing markers and results ---------------------------------------------

/// A slot's marker and published result: election (leader, follower,
/// late, alone), finishing, and reading the result. Input: flags, a tag,
/// the marker as a u16-length piece, then the result record.
pub fn coalesce_marker(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.u8();
    let own_tag = input.u64();
    let marker = input.piece();
    let result = input.rest();
    // Mostly the marker's own tag and times, so the branches that compare
    // them are reached.
    let field = |o: usize| -> u64 {
        marker
            .get(o..o + 8)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u64::from_le_bytes)
    };
    let tag = if flags & 1 == 1 { own_tag } else { field(5) };
    let until = field(21);
    // The clock is the host's: near the record's times when they are
    // plausible, so the live/expired comparisons go both ways.
    let near = |t: u64| {
        if (NOW / 2..NOW * 2).contains(&t) {
            t
        } else {
            NOW
        }
    };
    let now = match flags >> 1 & 3 {
        0 => NOW,
        1 => near(until).saturating_sub(1),
        2 => near(until),
        _ => NOWS[2],
    };
    let mut host = MemHost::new();
    plant(&mut host, &shared::coalesce_marker(0), marker);
    plant(&mut host, &shared::coalesce_result(0), result);
    let m = coalesce::read(&host, 0);
    let _ = coalesce::result(&host, 0, m.seq, "k");
    let role = coalesce::elect(&mut host, 0, tag, now, now.saturating_add(1000));
    if let Ok(coalesce::Role::Leader { seq }) = role {
        if flags & 8 == 8 {
            let _ = coalesce::finish_if_alone(&mut host, 0, tag, seq);
        } else {
            let _ = coalesce::publish(&mut host, 0, seq, &sample_entry("k"));
            let _ = coalesce::finish(&mut host, 0, tag, seq, coalesce::State::Done, now);
            let _ = coalesce::result(&host, 0, seq, "k");
        }
    }
    let _ = coalesce::elect(&mut host, 0, tag, now, now);
}

pub fn coalesce_marker_seeds() -> Vec<Vec<u8>> {
    let mut host = MemHost::new();
    let _ = coalesce::create(&mut host, 1);
    let _ = coalesce::elect(&mut host, 0, 42, NOW, NOW + 1000);
    let _ = coalesce::publish(&mut host, 0, 1, &sample_entry("k"));
    let _ = coalesce::finish(&mut host, 0, 42, 1, coalesce::State::Done, NOW + 500);
    let get = |k: &str| {
        host.shared_get(k)
            .ok()
            .flatten()
            .map(|(b, _)| b)
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    for flags in [0u8, 2, 9] {
        let mut s = vec![flags];
        s.extend_from_slice(&42u64.to_le_bytes());
        put_piece(&mut s, &get(&shared::coalesce_marker(0)));
        s.extend_from_slice(&get(&shared::coalesce_result(0)));
        out.push(s);
    }
    out
}

// --- limiter buckets and windows ---------------------------------------------------

/// A limiter slot's record under both algorithms, for the record's own
/// key and another: admissions (one and many) and the wait estimate.
/// Input: flags, capacity or limit, the rate or window, want, then the
/// record.
pub fn limiter(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.u8();
    let capacity = input.u32();
    let rate_bits = input.u64();
    let want = input.u32();
    let position = input.u32();
    let state = input.rest();
    let record_tag = state
        .get(5..13)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_le_bytes);
    let tag = if flags & 1 == 1 { 7 } else { record_tag };
    // The config allows capacity 1..=10^7 and a finite rate in
    // (0, 10^7]; the algorithms promise not to panic on any value, so
    // every f64 (NaN, infinities, negatives) is tried as well.
    let refill_per_s = if flags & 2 == 2 {
        f64::from_bits(rate_bits)
    } else {
        (rate_bits % 10_000_000_000) as f64 / 1000.0
    };
    let algos = [
        Algorithm::TokenBucket {
            capacity,
            refill_per_s,
        },
        Algorithm::SlidingWindow {
            limit: capacity,
            window_ms: rate_bits,
        },
    ];
    let fields: Vec<u64> = (0..3)
        .map(|i| {
            state
                .get(13 + 8 * i..21 + 8 * i)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u64::from_le_bytes)
        })
        .collect();
    // The clock is the host's; near the record's own times when they are
    // plausible, so that refills and window rolls happen.
    let near = |t: u64| {
        if (NOW / 2..NOW * 2).contains(&t) {
            t
        } else {
            NOW
        }
    };
    let nows = [
        NOW,
        NOWS[2],
        near(fields[0]),
        near(fields[1]).saturating_add(1),
    ];
    for algo in &algos {
        for now in nows {
            let (next, _) = limit::decide(Some(state), tag, algo, now);
            let _ = limit::algo::decide_many(Some(&next), tag, algo, now, want);
            let _ = limit::algo::decide_many(Some(state), tag, algo, now, want);
            let _ = limit::peek_wait_ms(Some(state), tag, algo, now, position);
        }
    }
}

pub fn limiter_seeds() -> Vec<Vec<u8>> {
    let bucket = Algorithm::TokenBucket {
        capacity: 5,
        refill_per_s: 0.5,
    };
    let window = Algorithm::SlidingWindow {
        limit: 10,
        window_ms: 60_000,
    };
    let mut out = Vec::new();
    for (algo, cap, rate) in [(bucket, 5u32, 500u64), (window, 10, 60_000)] {
        let (mut state, _) = limit::decide(None, 99, &algo, NOW);
        for i in 0..3 {
            state = limit::decide(Some(&state), 99, &algo, NOW + i * 700).0;
        }
        let mut s = vec![0u8];
        s.extend_from_slice(&cap.to_le_bytes());
        s.extend_from_slice(&rate.to_le_bytes());
        s.extend_from_slice(&3u32.to_le_bytes());
        s.extend_from_slice(&2u32.to_le_bytes());
        s.extend_from_slice(&state);
        out.push(s);
    }
    out
}

// --- budget allowances -------------------------------------------------------------

fn policy(flags: u8) -> Policy {
    Policy {
        allow_overdraft: flags & 1 == 1,
        on_unavailable: if flags & 2 == 2 {
            OnUnavailable::FailClosed
        } else {
            OnUnavailable::FailOpen
        },
        credit_micros: if flags & 4 == 4 { u64::MAX } else { 50_000 },
        low_water_micros: if flags & 8 == 8 { u64::MAX } else { 10_000 },
        renew_before_ms: if flags & 16 == 16 { u64::MAX } else { 5_000 },
    }
}

/// A slot of the allowance table: reading, reserving, settling, claiming
/// a refill, and applying a grant or a failure, for a tenant the record
/// names and one it does not. Input: flags, estimate, actual, then the
/// record.
pub fn allowance(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.u8();
    let estimate = input.u64();
    let actual = input.u64();
    let record = input.rest();
    let entries = budget::decode(record);
    let named = entries.first().map(|e| e.tenant.clone());
    let lease = entries.first().map(|e| e.allowance_id.clone());
    let p = policy(flags);
    // Every slot key holds the record (one slot: every tenant lands there).
    let slots = 1;
    for tenant in [named.as_deref().unwrap_or("acme"), "other"] {
        for now in NOWS {
            let mut host = MemHost::new();
            plant(&mut host, &shared::budget_slot(0), record);
            let _ = budget::read(&host, slots, tenant);
            let _ = budget::reserve(&mut host, slots, tenant, estimate, now, p);
            let source = if flags & 32 == 32 {
                Source::Credit
            } else {
                Source::Lease(lease.as_deref())
            };
            let _ = budget::settle(&mut host, slots, tenant, (estimate, actual), source, now);
            let _ = budget::claim_refill(&mut host, slots, tenant, now, 2_000, p);
            let g = Grant {
                allowance_id: lease.clone().filter(|_| flags & 64 == 64),
                granted_micros: (actual >> 1) as i64,
                expires_at_ms: estimate as i64,
                soft: flags & 128 == 128,
                hard: false,
            };
            let _ = budget::apply_grant(&mut host, slots, tenant, &g, now, 1_000);
            let _ = budget::apply_failure(&mut host, slots, tenant, now, 30_000);
            let _ = budget::reserve(&mut host, slots, tenant, actual, now, p);
        }
    }
}

pub fn allowance_seeds() -> Vec<Vec<u8>> {
    let e = budget::Entry {
        tenant: "acme".into(),
        allowance_id: "0123456789abcdef0123456789abcdef".into(),
        pool_micros: 25_000,
        expires_at_ms: NOW + 60_000,
        exhausted: false,
        unreachable: false,
        soft: true,
        retry_at_ms: 0,
        claim_until_ms: NOW + 1_000,
        credit_used_micros: 0,
    };
    let other = budget::Entry {
        tenant: "globex".into(),
        pool_micros: -300,
        ..budget::Entry::default()
    };
    let mut s = vec![0u8];
    s.extend_from_slice(&2_000u64.to_le_bytes());
    s.extend_from_slice(&1_500u64.to_le_bytes());
    s.extend_from_slice(&budget::encode(&[e, other]));
    vec![s]
}

/// What the filter writes into a slot must read back: tenants and lease
/// ids are cut to fit the record's length byte, and a cut in the middle
/// of a character would make the whole slot (every tenant in it) read as
/// empty. Input: tenant and lease id texts (u16-length pieces).
pub fn allowance_write(data: &[u8]) {
    let mut input = Input::new(data);
    let tenant = text(input.piece());
    let id = text(input.rest());
    let g = Grant {
        allowance_id: Some(id),
        granted_micros: 1_000,
        expires_at_ms: (NOW + 60_000) as i64,
        soft: false,
        hard: false,
    };
    let mut host = MemHost::new();
    let _ = budget::create(&mut host, 1);
    let _ = budget::apply_grant(&mut host, 1, "acme", &g, NOW, 1_000);
    let _ = budget::apply_grant(&mut host, 1, &tenant, &g, NOW, 1_000);
    assert!(
        budget::read(&host, 1, "acme").is_some(),
        "a grant for {tenant:?} made the slot unreadable"
    );
}

pub fn allowance_write_seeds() -> Vec<Vec<u8>> {
    let mut s = Vec::new();
    put_piece(&mut s, "tenant-é".as_bytes());
    s.extend_from_slice("lease-ü".as_bytes());
    // Ids and tenants near the record's 200-byte cut, in two-byte
    // characters.
    let mut long = Vec::new();
    put_piece(&mut long, "é".repeat(99).as_bytes());
    long.extend_from_slice("ü".repeat(120).as_bytes());
    vec![s, long]
}

// --- route health ------------------------------------------------------------------

/// The checksum `health.rs` puts in front of a table's body (fnv1a of a
/// label and the body, folded to 32 bits). Recomputed here so mutated
/// bodies get past it and reach the provider decoding; the raw input is
/// also decoded as it is, checksum and all.
fn health_checksum(body: &[u8]) -> u32 {
    let h = shared::fnv1a(&[b"route-health", body]);
    (h ^ (h >> 32)) as u32
}

/// A rule's provider health table: picking a provider (breaker claims),
/// recording results, reading the table. Input: flags, n providers,
/// latency, the order of providers, then the body of the table.
pub fn route_health(data: &[u8]) {
    let _ = Table::decode(data, usize::from(data.first().copied().unwrap_or(0) % 10));
    let mut input = Input::new(data);
    let flags = input.u8();
    let n = usize::from(input.u8() % 9);
    let latency = input.u64();
    let order: Vec<usize> = input.bytes(4).iter().map(|&b| usize::from(b % 9)).collect();
    let mut body = input.rest().to_vec();
    body.resize(n * RECORD_LEN, 0);
    let mut record = b"RTH\x01".to_vec();
    record.push(n as u8);
    record.extend_from_slice(&health_checksum(&body).to_le_bytes());
    record.extend_from_slice(&body);
    let cfg = if flags & 1 == 1 {
        BreakerConfig {
            failures: 0,
            failure_rate: f64::NAN,
            min_requests: 0,
            window_ms: 0,
            open_ms: u64::MAX,
            probes: 0,
            probe_timeout_ms: 0,
        }
    } else {
        BreakerConfig::default()
    };
    for now in NOWS {
        let mut host = MemHost::new();
        plant(&mut host, &shared::route_health(0), &record);
        let t = route::table::read(&host, 0, n);
        for p in &t.providers {
            let _ = (p.p50_ms(), p.p95_ms(), p.success_rate(), p.state());
            let _ = p.outstanding_probes(now, &cfg);
        }
        if let Ok(Some((i, claim))) = route::table::pick(&mut host, 0, n, &order, now, &cfg) {
            let ok = flags & 2 == 2;
            let _ = route::table::record(&mut host, 0, n, i, ok, latency, claim, now, &cfg);
            let _ = route::table::record(&mut host, 0, n, i, !ok, latency, claim, now, &cfg);
        }
    }
}

pub fn route_health_seeds() -> Vec<Vec<u8>> {
    let cfg = BreakerConfig::default();
    let mut host = MemHost::new();
    let _ = route::table::create(&mut host, 0, 2);
    for i in 0..12u64 {
        if let Ok(Some((p, claim))) = route::table::pick(&mut host, 0, 2, &[1, 0], NOW + i, &cfg) {
            let _ =
                route::table::record(&mut host, 0, 2, p, i % 3 != 0, 40 + i, claim, NOW + i, &cfg);
        }
    }
    let table = host
        .shared_get(&shared::route_health(0))
        .ok()
        .flatten()
        .map(|(b, _)| b)
        .unwrap_or_default();
    let mut s = vec![0u8, 2];
    s.extend_from_slice(&55u64.to_le_bytes());
    s.extend_from_slice(&[1, 0, 1, 0]);
    s.extend_from_slice(table.get(9..).unwrap_or_default());
    vec![s, table]
}

// --- purge poll state and generation counters -----------------------------------------

/// The purge poll state, the generation table and epoch, and the applied
/// purge fingerprints: claiming and finishing a poll, a worker refreshing
/// its generation copy, bumping counters, and applying purges. Input:
/// flags, then the poll state, the generation table, the epoch and the
/// applied table as u16-length pieces.
pub fn purge_records(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.u8();
    let poll = input.piece();
    let table = input.piece();
    let epoch = input.piece();
    let applied = input.rest();
    let _ = PollState::decode(poll);
    let slots = u32::from(flags % 32);
    let mut host = MemHost::new();
    plant(&mut host, shared::purge_poll(), poll);
    plant(&mut host, shared::gen_table(), table);
    plant(&mut host, shared::gen_epoch(), epoch);
    plant(&mut host, shared::purge_applied(), applied);
    for now in NOWS {
        let _ = snapshot::claim(&mut host, now, 1_000, 2_000, 7);
    }
    // With the epoch counter (`Metrics::cache_epoch`) on odd flags, the
    // shared epoch alone on even ones.
    let hint = (flags % 2 == 1)
        .then(|| host.define_counter("cost_optimizer.cache.epoch"))
        .flatten();
    let mut gens = Generations::default();
    gens.refresh(&host, slots, hint);
    let _ = gens.valid(&[(0, 0), (slots, 1), (u32::MAX, 0)]);
    let _ = Generations::bump(
        &mut host,
        slots,
        &[0, slots.saturating_sub(1), u32::MAX],
        hint,
    );
    gens.refresh(&host, slots, hint);
    gens.check_epoch(&host, slots, 5_000, 1_000);
    gens.check_epoch(&host, slots, 5_500, 1_000);
    let cfg = optimizer_core::config::parse(
        br#"{"version":1,"cache_store":{"generation_slots":64},"routes":[{"name":"a","match":{"prefix":"/a"},"cache":{"ignore_query":["utm"]}}]}"#,
    );
    if let Ok(cfg) = cfg {
        let mapping = optimizer_core::cache::purges::Mapping::of(&cfg);
        let purges = snapshot_purges();
        let _ = optimizer_core::cache::purges::apply(&mut host, &purges, &mapping, hint);
    }
    let end = match flags >> 5 {
        0 => PollEnd::NotModified,
        1 => PollEnd::Failed,
        _ => PollEnd::Applied {
            version: "v9",
            mapping: 7,
        },
    };
    let _ = snapshot::finish(&mut host, end);
    let _ = snapshot::claim(&mut host, NOW, 1_000, 2_000, 7);
}

fn snapshot_purges() -> Vec<optimizer_core::cache::purges::Purge> {
    snapshot::parse_snapshot(
        br#"{"version":"v9","purges":[{"tenant":"acme","kind":"prefix","value":"/a","generation":3},{"tenant":"acme","kind":"key","value":"/a/1?x=1","generation":1}]}"#,
    )
    .map(|s| s.purges)
    .unwrap_or_default()
}

pub fn purge_records_seeds() -> Vec<Vec<u8>> {
    let poll = PollState {
        claim_until_ms: NOW + 2_000,
        next_at_ms: NOW + 1_000,
        mapping: 7,
        failures: 2,
        version: "v8".into(),
    }
    .encode();
    let mut host = MemHost::new();
    let _ = Generations::create(&mut host, 16);
    let _ = Generations::bump(&mut host, 16, &[3, 5], None);
    let get = |k: &str| {
        host.shared_get(k)
            .ok()
            .flatten()
            .map(|(b, _)| b)
            .unwrap_or_default()
    };
    let mut s = vec![16u8];
    put_piece(&mut s, &poll);
    put_piece(&mut s, &get(shared::gen_table()));
    put_piece(&mut s, &get(shared::gen_epoch()));
    s.extend_from_slice(&[0u8; 64 * 8]);
    vec![s]
}
