//! Call counters: the call sequence number and the tallies of `/__calls`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::Serialize;

/// What `GET /__calls` reports.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct Tallies {
    /// Upstream HTTP requests to API routes (a batch counts once).
    pub total: u64,
    /// `total` split by request path (query string excluded).
    pub by_path: BTreeMap<String, u64>,
    /// REST batches (`POST /api/batch`) received.
    pub batches: u64,
    /// Members carried by REST batches and GraphQL arrays.
    pub batch_members: u64,
    /// `batch_members` split by member path (`/graphql` for GraphQL ops).
    pub members_by_path: BTreeMap<String, u64>,
    /// GraphQL array requests received.
    pub graphql_batches: u64,
}

/// Counters shared by all requests of one server.
#[derive(Debug, Default)]
pub struct Counters {
    call: AtomicU64,
    /// Server-sent events handed to connections by streamed chat answers
    /// (all streams together). Not part of `/__calls`: tests read it to
    /// tell how far a stream has been produced.
    stream_events: AtomicU64,
    tallies: Mutex<Tallies>,
}

impl Counters {
    /// Draw the next call sequence number (the first call is 1).
    pub fn next_call(&self) -> u64 {
        self.call.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Last call sequence number drawn.
    pub fn last_call(&self) -> u64 {
        self.call.load(Ordering::Relaxed)
    }

    /// Count one streamed event produced.
    pub fn record_stream_event(&self) {
        self.stream_events.fetch_add(1, Ordering::Relaxed);
    }

    /// Streamed events produced so far.
    pub fn stream_events(&self) -> u64 {
        self.stream_events.load(Ordering::Relaxed)
    }

    /// Count one upstream request to an API route.
    pub fn record_request(&self, path: &str) {
        let mut t = self.lock();
        t.total += 1;
        *t.by_path.entry(path.to_owned()).or_default() += 1;
    }

    /// Count one REST batch.
    pub fn record_batch(&self) {
        self.lock().batches += 1;
    }

    /// Count one GraphQL array request of `members` operations.
    pub fn record_graphql_batch(&self, members: usize) {
        let mut t = self.lock();
        t.graphql_batches += 1;
        t.batch_members += members as u64;
        *t.members_by_path.entry("/graphql".to_owned()).or_default() += members as u64;
    }

    /// Count one member of a REST batch under its own path.
    pub fn record_member(&self, path: &str) {
        let mut t = self.lock();
        t.batch_members += 1;
        *t.members_by_path.entry(path.to_owned()).or_default() += 1;
    }

    /// Copy of the tallies.
    pub fn snapshot(&self) -> Tallies {
        self.lock().clone()
    }

    /// Zero everything, the call sequence number included.
    pub fn reset(&self) {
        let mut t = self.lock();
        *t = Tallies::default();
        self.call.store(0, Ordering::Relaxed);
        self.stream_events.store(0, Ordering::Relaxed);
    }

    fn lock(&self) -> MutexGuard<'_, Tallies> {
        self.tallies.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
