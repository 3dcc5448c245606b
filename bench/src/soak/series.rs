//! Memory over time: one sample every few seconds of Envoy's `/memory`
//! (tcmalloc's allocated bytes and heap), its resident set, the filter's
//! heap gauge and Envoy's threads; and the test of "flat after warm-up".

/// One sample (seconds from the soak's start).
#[derive(Debug, Clone, Default)]
pub struct Sample {
    pub t_s: f64,
    /// `/memory` `allocated`: bytes Envoy's allocator has handed out.
    pub allocated: u64,
    /// `/memory` `heap_size`.
    pub heap_size: u64,
    /// VmRSS of Envoy's process (V8's wasm memory is there, not in
    /// tcmalloc's count).
    pub rss: u64,
    /// `wasmcustom.cost_optimizer.wasm.heap_live_bytes`: the filter's
    /// live heap, summed over the VMs that tick.
    pub filter_heap: Option<u64>,
    pub threads: usize,
    /// Answers so far.
    pub answered: u64,
}

/// How a series moved over the window after warm-up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trend {
    /// Median of the window's first samples, and of its last.
    pub start: f64,
    pub end: f64,
    pub min: f64,
    pub max: f64,
    /// Least-squares slope, per minute.
    pub slope_per_min: f64,
    /// (end − start) / start.
    pub growth: f64,
    /// The fitted line's rise over the window over its value at the
    /// window's start.
    pub fitted_growth: f64,
    pub samples: usize,
}

impl Trend {
    /// Flat: neither the end against the start nor the fitted line grows
    /// by more than `bound` (0.05 = 5 %).
    pub fn flat(&self, bound: f64) -> bool {
        self.growth <= bound && self.fitted_growth <= bound
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return 0.0;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The trend of `(t, value)` points from `from_s` on; `None` with fewer
/// than 4 points there.
pub fn trend(points: &[(f64, f64)], from_s: f64) -> Option<Trend> {
    let w: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|(t, _)| *t >= from_s)
        .collect();
    let n = w.len();
    if n < 4 {
        return None;
    }
    // The medians of a twentieth of the window at each end (at least 3
    // samples): one noisy sample does not decide.
    let k = (n / 20).max(3).min(n / 2);
    let start = median(&mut w[..k].iter().map(|p| p.1).collect::<Vec<_>>());
    let end = median(&mut w[n - k..].iter().map(|p| p.1).collect::<Vec<_>>());
    let (min, max) = w.iter().fold((f64::MAX, f64::MIN), |(lo, hi), p| {
        (lo.min(p.1), hi.max(p.1))
    });
    let nf = n as f64;
    let mt = w.iter().map(|p| p.0).sum::<f64>() / nf;
    let mv = w.iter().map(|p| p.1).sum::<f64>() / nf;
    let sxx: f64 = w.iter().map(|p| (p.0 - mt).powi(2)).sum();
    let sxy: f64 = w.iter().map(|p| (p.0 - mt) * (p.1 - mv)).sum();
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    let (t0, t1) = (w[0].0, w[n - 1].0);
    let fit0 = mv + slope * (t0 - mt);
    let ratio = |d: f64, base: f64| if base > 0.0 { d / base } else { 0.0 };
    Some(Trend {
        start,
        end,
        min,
        max,
        slope_per_min: slope * 60.0,
        growth: ratio(end - start, start),
        fitted_growth: ratio(slope * (t1 - t0), fit0),
        samples: n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_noisy_and_growing() {
        let flat: Vec<(f64, f64)> = (0..100)
            .map(|i| (i as f64, 1000.0 + if i % 2 == 0 { 10.0 } else { -10.0 }))
            .collect();
        let t = trend(&flat, 20.0).unwrap();
        assert!(t.flat(0.05), "{t:?}");
        assert_eq!(t.samples, 80);
        // 10 % over the window: not flat.
        let growing: Vec<(f64, f64)> = (0..100).map(|i| (i as f64, 1000.0 + i as f64)).collect();
        let g = trend(&growing, 20.0).unwrap();
        assert!(!g.flat(0.05), "{g:?}");
        assert!((g.slope_per_min - 60.0).abs() < 1e-6);
        // A bump in the middle (an outage's buffered events) that goes
        // away: the end is the start again.
        let bump: Vec<(f64, f64)> = (0..100)
            .map(|i| {
                (
                    i as f64,
                    if (40..50).contains(&i) {
                        1500.0
                    } else {
                        1000.0
                    },
                )
            })
            .collect();
        let b = trend(&bump, 20.0).unwrap();
        assert_eq!(b.growth, 0.0);
        assert!(trend(&flat[..3], 0.0).is_none());
    }
}
