//! Followers waiting on this worker, grouped by the leader's turn they
//! wait for, and those whose wait is over (answered or released a bounded
//! number per host call).

use std::collections::VecDeque;
use std::rc::Rc;

use crate::cache::entry::Entry;
use crate::host::StreamId;

#[derive(Debug, Clone)]
pub struct Waiter {
    pub stream: StreamId,
    pub route: usize,
    pub slot: u32,
    pub tag: u64,
    pub seq: u64,
    /// The coalescing key text the leader's result must carry.
    pub key: String,
    pub deadline_ms: u64,
    pub head: bool,
    pub started_ms: u64,
}

/// What to do with a follower whose wait is over.
#[derive(Debug, Clone)]
pub enum Action {
    Answer(Rc<Entry>),
    /// Let it go upstream; `timeout` tells which counter it belongs to.
    Release {
        timeout: bool,
    },
}

/// The timer period the waiters currently need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tick {
    #[default]
    Slow,
    /// Followers wait for a leader elsewhere.
    Fast,
    /// Answers are queued: drain them as fast as the host ticks.
    Drain,
}

#[derive(Debug, Default)]
pub struct Waiters {
    pub waiting: Vec<Waiter>,
    /// Followers whose wait is over, answered or released a bounded number
    /// per host call (see `coalesce_stage::ACTIONS_PER_CALL`).
    pub outbox: VecDeque<(Waiter, Action)>,
    pub tick: Tick,
    /// The period last set for `tick` (0 before the filter set one).
    pub tick_ms: u64,
}

impl Waiters {
    /// Take the waiters of one leader's turn out of the list.
    pub fn take_for(&mut self, slot: u32, seq: u64) -> Vec<Waiter> {
        let (taken, kept) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|w| w.slot == slot && w.seq == seq);
        self.waiting = kept;
        taken
    }

    /// Queue the followers of one leader's turn for `action`.
    pub fn settle(&mut self, slot: u32, seq: u64, action: &Action) {
        for w in self.take_for(slot, seq) {
            self.outbox.push_back((w, action.clone()));
        }
    }

    /// A stream ended: forget it.
    pub fn forget(&mut self, stream: StreamId) {
        self.waiting.retain(|w| w.stream != stream);
        self.outbox.retain(|(w, _)| w.stream != stream);
    }
}
