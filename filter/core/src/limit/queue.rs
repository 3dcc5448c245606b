//! This worker's queue of paused medium-priority requests waiting for
//! their limit to let them through: bounded, highest priority first, then
//! first come first served.
//!
//! Kept sorted on insert (a binary search and a shift), so admission, the
//! hot operation of the timer, is a pop from the front.

use std::collections::VecDeque;

/// One paused request. `item` is whatever the caller needs to resume or
/// answer it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued<T> {
    pub stream: u32,
    /// Higher goes first.
    pub priority: u8,
    /// Arrival order, increasing; ties of priority go in this order.
    pub seq: u64,
    /// Past this instant the request is refused instead of admitted.
    pub deadline_ms: u64,
    pub limit_key: String,
    pub item: T,
}

/// The queue was at its bound; the request was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

#[derive(Debug, Clone)]
pub struct Queue<T> {
    bound: usize,
    entries: VecDeque<Queued<T>>,
}

/// An empty queue of bound 0 (every push is refused): a worker without a
/// configured limit queues nothing. Written out because a derive would
/// demand `T: Default`.
impl<T> Default for Queue<T> {
    fn default() -> Self {
        Queue::new(0)
    }
}

impl<T> Queue<T> {
    pub fn new(bound: usize) -> Self {
        Queue {
            bound,
            entries: VecDeque::new(),
        }
    }

    pub fn bound(&self) -> usize {
        self.bound
    }

    /// Queue `q` in admission order, unless the queue is full.
    pub fn push(&mut self, q: Queued<T>) -> Result<(), Full> {
        if self.entries.len() >= self.bound {
            return Err(Full);
        }
        let at = self.entries.partition_point(|e| {
            e.priority > q.priority || (e.priority == q.priority && e.seq <= q.seq)
        });
        self.entries.insert(at, q);
        Ok(())
    }

    pub fn peek_front(&self) -> Option<&Queued<T>> {
        self.entries.front()
    }

    pub fn pop_front(&mut self) -> Option<Queued<T>> {
        self.entries.pop_front()
    }

    /// How many requests are ahead of `stream`.
    pub fn position_of(&self, stream: u32) -> Option<usize> {
        self.entries.iter().position(|e| e.stream == stream)
    }

    /// Take `stream` out (its client left, or it was answered otherwise).
    pub fn remove(&mut self, stream: u32) -> Option<Queued<T>> {
        let i = self.position_of(stream)?;
        self.entries.remove(i)
    }

    /// Take out every request whose deadline is past, in admission order.
    pub fn expired(&mut self, now_ms: u64) -> Vec<Queued<T>> {
        if self.entries.iter().all(|e| e.deadline_ms >= now_ms) {
            return Vec::new();
        }
        let (gone, kept): (Vec<_>, Vec<_>) =
            self.entries.drain(..).partition(|e| e.deadline_ms < now_ms);
        self.entries = kept.into();
        gone
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The queued requests in admission order.
    pub fn iter(&self) -> impl Iterator<Item = &Queued<T>> + '_ {
        self.entries.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(stream: u32, priority: u8, seq: u64, deadline_ms: u64) -> Queued<()> {
        Queued {
            stream,
            priority,
            seq,
            deadline_ms,
            limit_key: format!("k{stream}"),
            item: (),
        }
    }

    fn streams(queue: &Queue<()>) -> Vec<u32> {
        queue.iter().map(|e| e.stream).collect()
    }

    #[test]
    fn highest_priority_first_then_fifo() {
        let mut queue = Queue::new(10);
        for e in [
            q(1, 1, 1, 0),
            q(2, 2, 2, 0),
            q(3, 1, 3, 0),
            q(4, 2, 4, 0),
            q(5, 0, 5, 0),
            q(6, 1, 6, 0),
        ] {
            queue.push(e).unwrap();
        }
        assert_eq!(streams(&queue), [2, 4, 1, 3, 6, 5]);
        assert_eq!(queue.position_of(3), Some(3));
        assert_eq!(queue.position_of(99), None);
        assert_eq!(queue.peek_front().map(|e| e.stream), Some(2));
        assert_eq!(queue.pop_front().map(|e| e.stream), Some(2));
        assert_eq!(queue.remove(3).map(|e| e.seq), Some(3));
        assert_eq!(queue.remove(3), None);
        assert_eq!(streams(&queue), [4, 1, 6, 5]);
    }

    #[test]
    fn out_of_order_seq_still_sorts_by_arrival() {
        let mut queue = Queue::new(10);
        for e in [q(1, 1, 5, 0), q(2, 1, 2, 0), q(3, 1, 9, 0)] {
            queue.push(e).unwrap();
        }
        assert_eq!(streams(&queue), [2, 1, 3]);
    }

    #[test]
    fn bound_refuses_and_frees_up() {
        let mut queue = Queue::new(2);
        queue.push(q(1, 1, 1, 0)).unwrap();
        queue.push(q(2, 1, 2, 0)).unwrap();
        assert_eq!(queue.push(q(3, 9, 3, 0)), Err(Full));
        assert_eq!(queue.len(), 2);
        queue.pop_front();
        assert!(queue.push(q(3, 9, 3, 0)).is_ok());
        let mut none: Queue<()> = Queue::default();
        assert_eq!(none.push(q(1, 1, 1, 0)), Err(Full));
        assert!(none.is_empty());
        assert_eq!(none.bound(), 0);
    }

    #[test]
    fn expired_takes_out_only_the_past_deadlines_in_order() {
        let mut queue = Queue::new(10);
        for e in [
            q(1, 1, 1, 100),
            q(2, 2, 2, 50),
            q(3, 1, 3, 200),
            q(4, 0, 4, 60),
        ] {
            queue.push(e).unwrap();
        }
        assert!(queue.expired(50).is_empty());
        let gone: Vec<u32> = queue.expired(101).iter().map(|e| e.stream).collect();
        assert_eq!(gone, [2, 1, 4]);
        assert_eq!(streams(&queue), [3]);
        assert!(queue.expired(200).is_empty());
        assert_eq!(queue.expired(201).len(), 1);
        assert!(queue.is_empty());
    }
}
