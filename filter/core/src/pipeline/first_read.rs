//! How a request's headers are read at its first hook. A host call that
//! returns bytes is the dearest thing the filter does on Envoy (the host
//! calls back into the VM to allocate them: about a microsecond each,
//! measured by `make bench`'s P rows), so each request should cost one
//! such read, not two:
//!
//! - traffic no rule matches needs only `:path` (one short read decides
//!   it, and the filter leaves the request alone);
//! - traffic a rule matches needs every header (identity, cache key,
//!   conditionals), so reading `:path` first is a wasted call.
//!
//! The worker learns which kind of traffic it sees: a score that moves one
//! step per request towards "matched" or "unmatched" and saturates, so a
//! change of mix is followed within a few requests and one odd request
//! does not flip the choice. Either way the same request is decided the
//! same way; only the number of host calls changes.

/// The worker's recent mix of matched and unmatched requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirstRead {
    score: u8,
}

/// The score saturates here; at or above [`ALL_FROM`] every header is
/// read at once.
const MAX: u8 = 16;
const ALL_FROM: u8 = 8;

impl Default for FirstRead {
    /// A new worker starts reading `:path` first: the cheaper guess for a
    /// gateway where most routes are not the filter's.
    fn default() -> Self {
        FirstRead { score: 0 }
    }
}

impl FirstRead {
    /// Whether the next request's first read should be every header.
    pub fn all_at_once(&self) -> bool {
        self.score >= ALL_FROM
    }

    /// A request was decided: a rule matched it, or none did.
    pub fn record(&mut self, matched: bool) {
        self.score = if matched {
            (self.score + 1).min(MAX)
        } else {
            self.score.saturating_sub(1)
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_mix_with_hysteresis() {
        let mut f = FirstRead::default();
        assert!(!f.all_at_once());
        for _ in 0..ALL_FROM {
            f.record(true);
        }
        assert!(f.all_at_once());
        // Saturated: one unmatched request does not flip it back.
        for _ in 0..20 {
            f.record(true);
        }
        f.record(false);
        assert!(f.all_at_once());
        // A run of unmatched traffic does, within MAX - ALL_FROM + 1.
        for _ in 0..(MAX - ALL_FROM) {
            f.record(false);
        }
        assert!(!f.all_at_once());
        for _ in 0..100 {
            f.record(false);
        }
        assert_eq!(f, FirstRead::default());
    }
}
