//! Where a request is in its life, and the only moves between those
//! places. [`Phase::on`] is the whole transition table; the state machine
//! (`machine.rs`) asks it before every change, and `phase_tests.rs`
//! checks every (phase, event) pair against the table written out.

/// The request stages, in the order a request meets them (DESIGN.md
/// "What it does to a request", after identify and cache). A request that
/// waited resumes at the stage after the one that parked it, exactly as
/// if it had not waited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    Limit,
    Budget,
    Coalesce,
    Batch,
    /// Choosing a provider.
    Route,
}

impl Stage {
    pub const ALL: [Stage; 5] = [
        Stage::Limit,
        Stage::Budget,
        Stage::Coalesce,
        Stage::Batch,
        Stage::Route,
    ];

    /// This stage and the ones after it.
    pub fn onwards(self) -> impl Iterator<Item = Stage> {
        Stage::ALL.into_iter().filter(move |s| *s >= self)
    }
}

/// What a parked request waits for. Each is kept in its stage's own index
/// (the limiter's queue, the budget's waiting list, the coalescer's turn,
/// an open batch), which only orders and groups streams; everything else
/// about the request stays on its `Exchange`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// A token from the rate limiter (medium priority, within its SLA).
    Limit,
    /// Its tenant's first budget lease.
    Lease,
    /// The answer of an identical request in flight (a follower).
    Leader,
    /// Its batch's call.
    Batch,
}

impl Wait {
    /// The stage a request continues at when this wait lets it go on:
    /// the next one, except a lease wait, which asks its budget again (a
    /// reservation from the new lease passes it on to coalescing).
    pub fn resumes_at(self) -> Stage {
        match self {
            Wait::Limit => Stage::Budget,
            Wait::Lease => Stage::Budget,
            Wait::Leader => Stage::Batch,
            Wait::Batch => Stage::Route,
        }
    }
}

/// How the filter answered a request itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// From the cache at its headers.
    Cache,
    /// With an identical request's answer.
    Coalesced,
    /// From its part of a batch call of `size` members, in which it was
    /// member `index` (its share of the call's price).
    Batched { size: u32, index: u32 },
    /// A stale entry instead of an upstream error (the call was made).
    StaleOnError,
    /// A stale entry the upstream confirmed with `304` (the call was
    /// made), refreshed.
    Revalidated,
    /// Refused: rate limit, budget, or no tenant.
    Refused,
}

/// Where a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Going through the request stages (only while a hook or the timer
    /// runs them).
    Deciding,
    /// Paused until its wait is over.
    Parked(Wait),
    /// Its headers went on (a buffer filter after this one holds them);
    /// the filter gathers its body to join a batch.
    GatheringBody,
    /// Its headers went on (a buffer filter after this one holds them,
    /// where the host needs one); the filter reads its body as a prompt
    /// before any stage decides.
    ReadingPrompt,
    /// On its way upstream: its response runs the response stages.
    Upstream,
    /// Answered by the filter; its response hooks only account for it.
    Answered(Served),
}

/// What happens to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A stage paused it.
    Park(Wait),
    /// The filter answered it.
    Answer(Served),
    /// Every stage let it pass: it goes upstream.
    Forward,
    /// The batch stage waits for its body.
    AwaitBody,
    /// Its wait is over and it goes on through the stages.
    Wake,
    /// A prompt rule reads its body first.
    ReadPrompt,
}

impl Phase {
    /// The phase after `event`, or `None` when the table has no such move
    /// (the caller logs it and keeps the request safe).
    pub fn on(self, event: Event) -> Option<Phase> {
        use Event as E;
        use Phase as P;
        match (self, event) {
            (P::Deciding, E::Park(w)) => Some(P::Parked(w)),
            (P::Deciding, E::Answer(s)) => Some(P::Answered(s)),
            (P::Deciding, E::Forward) => Some(P::Upstream),
            (P::Deciding, E::AwaitBody) => Some(P::GatheringBody),
            (P::Deciding, E::ReadPrompt) => Some(P::ReadingPrompt),
            // Its body is read: on through the stages.
            (P::ReadingPrompt, E::Wake) => Some(P::Deciding),
            // Its response came first (another filter answered it).
            (P::ReadingPrompt, E::Forward) => Some(P::Upstream),
            (P::Parked(_), E::Wake) => Some(P::Deciding),
            (P::Parked(_), E::Answer(s)) => Some(P::Answered(s)),
            // Its response came while it waited (another filter answered
            // it): it waits no more.
            (P::Parked(_), E::Forward) => Some(P::Upstream),
            (P::GatheringBody, E::Park(Wait::Batch)) => Some(P::Parked(Wait::Batch)),
            (P::GatheringBody, E::Forward) => Some(P::Upstream),
            (P::Upstream, E::Answer(s @ (Served::StaleOnError | Served::Revalidated))) => {
                Some(P::Answered(s))
            }
            _ => None,
        }
    }

    /// Whether the request is paused by this filter.
    pub fn is_parked(self) -> bool {
        matches!(self, Phase::Parked(_))
    }
}
