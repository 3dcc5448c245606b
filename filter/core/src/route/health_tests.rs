//! Statistics (EWMA, p95 estimate) and the binary table: round trip, and
//! damaged, foreign, other-version and wrong-count bytes.

use super::*;
use proptest::prelude::*;

const T0: u64 = 1_700_000_000_000;

fn feed(p: &mut Provider, latencies: impl IntoIterator<Item = u64>) {
    for l in latencies {
        p.record(true, l, Claim::Normal, T0, &BreakerConfig::default());
    }
}

#[test]
fn a_new_provider_is_trusted_and_unmeasured() {
    let p = Provider::default();
    assert_eq!(p.success_rate(), 1.0);
    assert_eq!((p.p50_ms(), p.p95_ms()), (None, None));
    assert_eq!(p.state(), State::Closed);
    assert_eq!(p.samples(), 0);
}

#[test]
fn latency_is_reported_from_the_fifth_sample() {
    let mut p = Provider::default();
    feed(&mut p, [100; 4]);
    assert_eq!((p.p50_ms(), p.p95_ms()), (None, None));
    feed(&mut p, [100]);
    assert_eq!(p.p50_ms(), Some(100));
    // The first sample's spread (half of it) has decayed by 0.75^4.
    assert_eq!(p.p95_ms(), Some(132));
}

#[test]
fn steady_latency_narrows_p95_to_p50() {
    let mut p = Provider::default();
    feed(&mut p, [100; 60]);
    assert_eq!(p.p50_ms(), Some(100));
    assert_eq!(p.p95_ms(), Some(100));
}

#[test]
fn spread_latency_widens_p95() {
    let mut p = Provider::default();
    feed(&mut p, (0..200).map(|i| if i % 2 == 0 { 50 } else { 150 }));
    let p50 = p.p50_ms().unwrap();
    let p95 = p.p95_ms().unwrap();
    assert!((85..=115).contains(&p50), "{p50}");
    assert!((170..=230).contains(&p95), "{p95}");
}

#[test]
fn the_average_follows_a_change() {
    let mut p = Provider::default();
    feed(&mut p, [100; 30]);
    feed(&mut p, [300; 20]);
    // 1 - 0.875^20 of the way: 286.
    assert_eq!(p.p50_ms(), Some(286));
    assert!(p.p95_ms().unwrap() > 300);
    feed(&mut p, [300; 60]);
    assert_eq!(p.p50_ms(), Some(300));
}

/// On normally distributed latency the estimate lands near the true 95th
/// percentile (μ + 1.645 σ); averaged over time, since a single reading
/// follows the last few samples.
#[test]
fn p95_estimates_a_normal_distribution() {
    let (mu, sigma) = (200.0, 40.0);
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut uniform = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut p = Provider::default();
    let (mut sum, mut count) = (0.0, 0.0);
    for i in 0..20_000 {
        // Irwin–Hall: 12 uniforms minus 6 is close to a standard normal.
        let z: f64 = (0..12).map(|_| uniform()).sum::<f64>() - 6.0;
        feed(&mut p, [(mu + sigma * z).max(0.0).round() as u64]);
        if i >= 100 {
            sum += p.p95_ms().unwrap() as f64;
            count += 1.0;
        }
    }
    let mean_estimate = sum / count;
    let truth = mu + 1.645 * sigma;
    assert!(
        (mean_estimate - truth).abs() < 0.05 * truth,
        "{mean_estimate} vs {truth}"
    );
}

#[test]
fn failures_lower_the_success_rate_but_not_latency() {
    let cfg = BreakerConfig {
        failures: 0,
        failure_rate: f64::NAN,
        ..BreakerConfig::default()
    };
    let mut p = Provider::default();
    feed(&mut p, [100; 10]);
    for _ in 0..10 {
        p.record(false, 5, Claim::Normal, T0, &cfg);
    }
    assert!((p.success_rate() - 0.9f64.powi(10)).abs() < 1e-4);
    assert_eq!(p.p50_ms(), Some(100));
    assert_eq!(p.samples(), 10);
    for _ in 0..100 {
        p.record(true, 100, Claim::Normal, T0, &cfg);
    }
    assert!(p.success_rate() > 0.99);
}

#[test]
fn extreme_latency_stays_a_number() {
    let mut p = Provider::default();
    feed(&mut p, [u64::MAX; 10]);
    assert!(p.p50_ms().is_some() && p.p95_ms().is_some());
    let t = Table { providers: vec![p] };
    assert_eq!(Table::decode(&t.encode(), 1), t);
}

/// A table with something in every field.
fn lived_in(n: usize) -> Table {
    let cfg = BreakerConfig::default();
    let mut t = Table::fresh(n);
    for (i, p) in t.providers.iter_mut().enumerate() {
        let i = i as u64;
        feed(p, (0..7).map(|k| 100 + 10 * i + k));
        p.record(false, 9, Claim::Normal, T0 + i, &cfg);
        if i % 2 == 1 {
            for _ in 0..cfg.failures {
                p.record(false, 9, Claim::Normal, T0 + i, &cfg);
            }
            p.claim(T0 + i + cfg.open_ms, &cfg);
        }
    }
    t
}

#[test]
fn round_trip() {
    for n in 0..=MAX_PROVIDERS {
        let t = lived_in(n);
        let bytes = t.encode();
        assert_eq!(bytes.len(), HEADER_LEN + n * RECORD_LEN);
        assert_eq!(Table::decode(&bytes, n), t);
    }
    assert_eq!(
        lived_in(2).providers.get(1).map(Provider::state),
        Some(State::HalfOpen)
    );
    // Small enough for a shared-data value even at the maximum.
    const { assert!(HEADER_LEN + MAX_PROVIDERS * RECORD_LEN < 1_024) };
}

#[test]
fn every_damaged_byte_reads_as_fresh() {
    let t = lived_in(3);
    let bytes = t.encode();
    for i in 0..bytes.len() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut b = bytes.clone();
            b[i] ^= flip;
            assert_eq!(
                Table::decode(&b, 3),
                Table::fresh(3),
                "byte {i} ^ {flip:#x}"
            );
        }
    }
    for len in 0..bytes.len() {
        assert_eq!(
            Table::decode(&bytes[..len], 3),
            Table::fresh(3),
            "cut at {len}"
        );
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(Table::decode(&longer, 3), Table::fresh(3));
}

#[test]
fn foreign_bytes_read_as_fresh() {
    for foreign in [
        &b""[..],
        b"hello",
        b"CIF\x02\x01",
        &[0u8; 64],
        &[0xff; 4_000],
    ] {
        assert_eq!(Table::decode(foreign, 2), Table::fresh(2));
    }
}

#[test]
fn another_version_reads_as_fresh() {
    let mut b = lived_in(2).encode();
    b[3] = VERSION + 1;
    assert_eq!(Table::decode(&b, 2), Table::fresh(2));
}

#[test]
fn another_provider_count_reads_as_fresh_of_the_count_asked() {
    let b = lived_in(3).encode();
    assert_eq!(Table::decode(&b, 2), Table::fresh(2));
    assert_eq!(Table::decode(&b, 4), Table::fresh(4));
    assert_eq!(Table::decode(&b, 4).providers.len(), 4);
}

#[test]
fn no_input_allocates_beyond_the_maximum() {
    assert_eq!(
        Table::decode(b"", usize::MAX).providers.len(),
        MAX_PROVIDERS
    );
    assert_eq!(Table::fresh(usize::MAX).providers.len(), MAX_PROVIDERS);
    // Above the maximum is read as the maximum, consistently.
    let t = lived_in(MAX_PROVIDERS);
    assert_eq!(Table::decode(&t.encode(), 1_000), t);
    // A table longer than the wire allows is cut, not mis-counted.
    let mut long = lived_in(MAX_PROVIDERS);
    long.providers.push(Provider::default());
    assert_eq!(Table::decode(&long.encode(), MAX_PROVIDERS), t);
}

#[test]
fn a_statistic_that_is_not_a_number_reads_as_fresh() {
    for bad in [f32::NAN, f32::INFINITY, -1.0] {
        let mut t = lived_in(1);
        if let Some(p) = t.providers.first_mut() {
            p.latency_dev = bad;
        }
        assert_eq!(Table::decode(&t.encode(), 1), Table::fresh(1));
    }
    let mut t = lived_in(1);
    if let Some(p) = t.providers.first_mut() {
        p.success = 1.5;
    }
    assert_eq!(Table::decode(&t.encode(), 1), Table::fresh(1));
}

proptest! {
    #[test]
    fn any_bytes_decode_to_a_table_of_the_count_asked(
        bytes in proptest::collection::vec(any::<u8>(), 0..1_200),
        n in 0usize..12,
    ) {
        prop_assert_eq!(Table::decode(&bytes, n).providers.len(), n.min(MAX_PROVIDERS));
    }

    /// Whatever happened to a table, it comes back as it was.
    #[test]
    fn any_history_round_trips(
        n in 1usize..=MAX_PROVIDERS,
        ops in proptest::collection::vec(
            (0usize..8, any::<bool>(), any::<bool>(), any::<bool>(), 0u64..20_000, 0u64..3_000),
            0..200),
    ) {
        let cfg = BreakerConfig::default();
        let mut t = Table::fresh(n);
        let mut now = T0;
        for (i, claim, ok, probe, latency, gap) in ops {
            now += gap;
            let Some(p) = t.providers.get_mut(i % n) else { continue };
            if claim {
                p.claim(now, &cfg);
            } else {
                let c = if probe { Claim::Probe } else { Claim::Normal };
                p.record(ok, latency, c, now, &cfg);
            }
        }
        prop_assert_eq!(Table::decode(&t.encode(), n), t);
    }
}
