//! Sliding window arithmetic: two fixed windows aligned on multiples of
//! the window length (so every worker agrees where a window starts), the
//! previous one weighted by how much of it still overlaps the sliding
//! window ending now. Compared in integers, scaled by the window length,
//! so no float rounding can admit one request too many.

use super::algo::Decision;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    /// Start of the current fixed window.
    pub start: u64,
    pub current: u64,
    pub previous: u64,
}

impl Window {
    pub fn fresh(now_ms: u64, w: u64) -> Window {
        Window {
            start: now_ms - now_ms % w,
            current: 0,
            previous: 0,
        }
    }

    /// Move to the window holding `now_ms`.
    pub fn roll(&mut self, now_ms: u64, w: u64) {
        let s = now_ms - now_ms % w;
        if s <= self.start {
            // Same window, or the clock went back: keep counting in the
            // current window (the strictest reading; rolling back would
            // forget requests).
            return;
        }
        self.previous = if s - self.start == w { self.current } else { 0 };
        self.current = 0;
        self.start = s;
    }

    /// Milliseconds of the current window already gone, at most `w`.
    fn elapsed(&self, now_ms: u64, w: u64) -> u64 {
        now_ms.saturating_sub(self.start).min(w)
    }

    /// Whether `k` more requests fit now: prev·(w−e)/w + cur + k ≤ limit,
    /// multiplied through by w.
    /// Each product fits a u128; their sum is saturated, since counts
    /// near u64::MAX (a damaged record) and a window near u64::MAX (the
    /// algorithms take any value; the config allows up to a day) made it
    /// overflow (found by fuzzing, `limiter`). Saturated, it only reads
    /// as "full", which it is.
    fn fits(&self, limit: u64, w: u64, e: u64, k: u64) -> bool {
        let used = (u128::from(self.previous) * u128::from(w - e))
            .saturating_add((u128::from(self.current) + u128::from(k)) * u128::from(w));
        used <= u128::from(limit) * u128::from(w)
    }

    fn remaining(&self, limit: u64, w: u64, e: u64) -> u32 {
        let used = (u128::from(self.previous) * u128::from(w - e))
            .saturating_add(u128::from(self.current) * u128::from(w));
        let free = (u128::from(limit) * u128::from(w)).saturating_sub(used) / u128::from(w);
        u32::try_from(free).unwrap_or(u32::MAX)
    }

    /// Milliseconds from `now_ms` until `k` more requests fit, assuming the
    /// `k − 1` before the last one are admitted as soon as they fit.
    pub fn wait_ms(&self, limit: u64, w: u64, now_ms: u64, k: u64) -> u64 {
        if limit == 0 {
            return u64::MAX;
        }
        // Smallest offset into a window whose previous window holds `prev`
        // at which `free_slots` more requests fit: prev·(w−x) ≤ free·w.
        let offset = |prev: u64, free_slots: u64| -> u64 {
            if prev == 0 {
                return 0;
            }
            let room = u128::from(free_slots) * u128::from(w) / u128::from(prev);
            w - u64::try_from(room.min(u128::from(w))).unwrap_or(w)
        };
        let window_end = self.start.saturating_add(w);
        if self.current.saturating_add(k) <= limit {
            // Fits in this window once enough of the previous one slid out.
            let x = offset(self.previous, limit - self.current - k);
            return self.start.saturating_add(x).saturating_sub(now_ms);
        }
        let to_next = window_end.saturating_sub(now_ms);
        if k <= limit {
            // Next window: this one becomes the previous one.
            return to_next.saturating_add(offset(self.current, limit - k));
        }
        // More than a window's worth ahead: they fill `full` whole windows
        // of `limit` each, then the rest waits behind a full window.
        let full = (k - 1) / limit;
        let rest = k - full * limit;
        to_next
            .saturating_add(full.saturating_mul(w))
            .saturating_add(offset(limit, limit - rest))
    }
}

pub(crate) fn decide(
    mut win: Window,
    limit: u32,
    window_ms: u64,
    now_ms: u64,
) -> (Window, Decision) {
    let (limit, w) = (u64::from(limit), window_ms.max(1));
    win.roll(now_ms, w);
    let e = win.elapsed(now_ms, w);
    let admitted = win.fits(limit, w, e, 1);
    if admitted {
        win.current += 1;
    }
    let d = Decision {
        admitted,
        remaining: win.remaining(limit, w, e),
        reset_ms: win.start.saturating_add(w).saturating_sub(now_ms),
        retry_after_ms: if admitted {
            0
        } else {
            win.wait_ms(limit, w, now_ms, 1)
        },
    };
    (win, d)
}

pub(crate) fn peek(mut win: Window, limit: u32, window_ms: u64, now_ms: u64, position: u32) -> u64 {
    let w = window_ms.max(1);
    win.roll(now_ms, w);
    win.wait_ms(u64::from(limit), w, now_ms, u64::from(position) + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Found by fuzzing (`limiter`): a damaged record's counts near
    /// u64::MAX with a window near u64::MAX overflowed the u128 sum.
    #[test]
    fn extreme_counts_and_window_read_as_full_without_overflow() {
        let w = Window {
            start: 0,
            current: u64::MAX - 1,
            previous: u64::MAX,
        };
        let (_, d) = decide(w, u32::MAX, u64::MAX, 1);
        assert!(!d.admitted);
        assert_eq!(d.remaining, 0);
    }

    /// A multiple of every window used below, so windows start at T0.
    const T0: u64 = 1_700_000_000_000;

    fn run(limit: u32, w: u64, offsets: &[u64]) -> Vec<bool> {
        let mut win = Window::fresh(T0, w);
        offsets
            .iter()
            .map(|&o| {
                let (next, d) = decide(win, limit, w, T0 + o);
                win = next;
                d.admitted
            })
            .collect()
    }

    #[test]
    fn arithmetic_table() {
        // (limit, window ms, request offsets, expected admissions)
        let cases: &[(u32, u64, &[u64], &[bool])] = &[
            (2, 1000, &[0, 10, 20], &[true, true, false]),
            // Roll-over: at 1000 the previous window (2) weighs fully.
            (2, 1000, &[0, 10, 1000], &[true, true, false]),
            // At 1500 it weighs half: 2·0.5 + 0 + 1 = 2 ≤ 2.
            (2, 1000, &[0, 10, 1500, 1500], &[true, true, true, false]),
            // Two windows later the old one no longer counts.
            (
                2,
                1000,
                &[0, 10, 2000, 2001, 2002],
                &[true, true, true, true, false],
            ),
        ];
        for (limit, w, offsets, want) in cases {
            assert_eq!(
                &run(*limit, *w, offsets),
                want,
                "limit {limit} w {w} at {offsets:?}"
            );
        }
    }

    #[test]
    fn previous_window_weight() {
        let win = Window {
            start: T0,
            current: 0,
            previous: 10,
        };
        // 75% through: 10·0.25 = 2.5 used of 4.
        let (win, d) = decide(win, 4, 1000, T0 + 750);
        assert!(d.admitted);
        assert_eq!(d.remaining, 0);
        assert_eq!(d.reset_ms, 250);
        let (_, d) = decide(win, 4, 1000, T0 + 750);
        // 2.5 + 1 + 1 > 4 until 10·(1000−x) ≤ 2000: x = 800.
        assert_eq!((d.admitted, d.retry_after_ms), (false, 50));
    }

    #[test]
    fn clock_going_back_counts_in_the_current_window() {
        let win = Window {
            start: T0 + 5000,
            current: 1,
            previous: 0,
        };
        let (win, d) = decide(win, 2, 1000, T0);
        assert!(d.admitted);
        assert_eq!(
            win,
            Window {
                start: T0 + 5000,
                current: 2,
                previous: 0
            }
        );
        let (_, d) = decide(win, 2, 1000, T0);
        assert!(!d.admitted);
        assert_eq!(d.reset_ms, 6000);
    }

    #[test]
    fn wait_when_the_current_window_is_full() {
        let win = Window {
            start: T0,
            current: 3,
            previous: 0,
        };
        // Next window, 3 in its previous: 3·(1000−x) ≤ 2·1000 → x = 334.
        let (_, d) = decide(win, 3, 1000, T0 + 400);
        assert_eq!(d.retry_after_ms, 600 + 334);
        assert_eq!(peek(win, 3, 1000, T0 + 400, 0), 934);
        // Three ahead: the next window takes them at its very end.
        assert_eq!(peek(win, 3, 1000, T0 + 400, 2), 600 + 1000);
        assert_eq!(peek(win, 0, 1000, T0, 0), u64::MAX);
    }

    #[test]
    fn zero_window_is_one_ms() {
        let (_, d) = decide(Window::fresh(T0, 1), 1, 0, T0);
        assert!(d.admitted);
    }
    proptest! {
        /// With a monotone clock no fixed window admits more than the
        /// limit (the estimate never counts less than the current window).
        #[test]
        fn fixed_windows_never_exceed_the_limit(
            limit in 1u32..20,
            w in 1u64..5000,
            gaps in proptest::collection::vec(0u64..700, 1..200),
        ) {
            let mut win = Window::fresh(T0, w);
            let mut now = T0;
            let mut per_window = std::collections::HashMap::new();
            for gap in gaps {
                now += gap;
                let (next, d) = decide(win, limit, w, now);
                win = next;
                if d.admitted {
                    *per_window.entry(now / w).or_insert(0u32) += 1;
                }
            }
            for (start, n) in per_window {
                prop_assert!(n <= limit, "window {start}: {n} > {limit}");
            }
        }
    }
}
