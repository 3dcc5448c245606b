//! Budget arithmetic shared by every store: remaining budget, soft/hard
//! flags, and which alerts a window's spend crosses.

use crate::model::{Budget, TenantState};
use crate::window::{day_start, month_bounds, DAY_MS};

/// Spend and outstanding allowances that apply to one budget now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub day_spent: i64,
    pub month_spent: i64,
    pub outstanding: i64,
}

/// Remaining = limit − spend − outstanding, the smaller over both windows.
pub fn remaining(b: &Budget, u: Usage) -> i64 {
    let day = b
        .daily_limit_micros
        .map(|l| l - u.day_spent - u.outstanding);
    let month = b
        .monthly_limit_micros
        .map(|l| l - u.month_spent - u.outstanding);
    match (day, month) {
        (Some(d), Some(m)) => d.min(m),
        (Some(d), None) => d,
        (None, Some(m)) => m,
        (None, None) => i64::MAX,
    }
}

fn soft_threshold(limit: i64, percent: u8) -> i64 {
    // Rounded up so that 90% of 1 micro is 1 micro, never 0.
    ((i128::from(limit) * i128::from(percent) + 99) / 100) as i64
}

/// The state the snapshot shows: used = spend + outstanding.
pub fn state(b: &Budget, u: Usage, now_ms: i64) -> TenantState {
    let rem = remaining(b, u);
    let over_soft = |limit: Option<i64>, spent: i64| {
        limit.is_some_and(|l| spent + u.outstanding >= soft_threshold(l, b.soft_limit_percent))
    };
    let (_, month_end) = month_bounds(now_ms, b.utc_offset_minutes);
    TenantState {
        tenant: b.tenant.clone(),
        service: b.service.clone(),
        daily_limit_micros: b.daily_limit_micros,
        monthly_limit_micros: b.monthly_limit_micros,
        soft_limit_percent: b.soft_limit_percent,
        utc_offset_minutes: b.utc_offset_minutes,
        daily_spent_micros: u.day_spent,
        monthly_spent_micros: u.month_spent,
        outstanding_micros: u.outstanding,
        remaining_micros: rem,
        soft: over_soft(b.daily_limit_micros, u.day_spent)
            || over_soft(b.monthly_limit_micros, u.month_spent),
        hard: rem <= 0,
        day_ends_at_ms: day_start(now_ms, b.utc_offset_minutes) + DAY_MS,
        month_ends_at_ms: month_end,
    }
}

/// An alert a window's spend has crossed: (window, window_start, level, limit).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Crossing {
    pub window: &'static str,
    pub window_start_ms: i64,
    pub level: &'static str,
    pub spent: i64,
    pub limit: i64,
}

/// The soft/hard thresholds the given spend has reached, for the day window
/// starting `day_start_ms` and its month. Alerts count spend only.
pub fn crossings(b: &Budget, day_start_ms: i64, day_spent: i64, month_spent: i64) -> Vec<Crossing> {
    let mut out = Vec::new();
    let month_start = month_bounds(day_start_ms, b.utc_offset_minutes).0;
    for (window, start, limit, spent) in [
        ("daily", day_start_ms, b.daily_limit_micros, day_spent),
        ("monthly", month_start, b.monthly_limit_micros, month_spent),
    ] {
        let Some(limit) = limit else { continue };
        if spent >= soft_threshold(limit, b.soft_limit_percent) {
            out.push(Crossing {
                window,
                window_start_ms: start,
                level: "soft",
                spent,
                limit,
            });
        }
        if spent >= limit {
            out.push(Crossing {
                window,
                window_start_ms: start,
                level: "hard",
                spent,
                limit,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget() -> Budget {
        Budget {
            tenant: "t".into(),
            service: String::new(),
            daily_limit_micros: Some(100),
            monthly_limit_micros: Some(1000),
            soft_limit_percent: 90,
            utc_offset_minutes: 0,
        }
    }

    #[test]
    fn remaining_is_the_tighter_window() {
        let u = Usage {
            day_spent: 30,
            month_spent: 950,
            outstanding: 10,
        };
        assert_eq!(remaining(&budget(), u), 40);
        let u = Usage {
            day_spent: 30,
            month_spent: 300,
            outstanding: 10,
        };
        assert_eq!(remaining(&budget(), u), 60);
    }

    #[test]
    fn flags_and_crossings() {
        let s = state(
            &budget(),
            Usage {
                day_spent: 85,
                month_spent: 85,
                outstanding: 5,
            },
            0,
        );
        assert!(s.soft && !s.hard);
        let s = state(
            &budget(),
            Usage {
                day_spent: 95,
                month_spent: 95,
                outstanding: 5,
            },
            0,
        );
        assert!(s.hard && s.remaining_micros == 0);
        let c = crossings(&budget(), 0, 100, 100);
        assert_eq!(c.len(), 2);
        assert!(c.iter().all(|c| c.window == "daily"));
        assert!(crossings(&budget(), 0, 89, 89).is_empty());
    }
}
