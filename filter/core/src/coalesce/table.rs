//! The in-flight table in shared data: one marker per slot (who leads which
//! request, until when) and one published result per slot.
//!
//! Leader election is a compare-and-swap on a marker that exists from the
//! start (created in `on_configure`), which is atomic on Envoy and Kong
//! alike. Every election bumps the slot's sequence number, so a follower
//! only ever takes the result, or the failure, of the leader it joined.

use crate::cache::entry::Entry;
use crate::host::{Host, HostError};
use crate::shared::cas_update;

const MAGIC: [u8; 4] = *b"CIF\x02";

use crate::shared::{coalesce_marker as marker_key, coalesce_result as result_key};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Empty,
    InFlight,
    Done,
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    pub state: State,
    pub tag: u64,
    pub seq: u64,
    /// In flight: the leader's deadline. Done: end of the grace window.
    pub until_ms: u64,
    /// Someone joined as a follower: the leader must publish its answer.
    /// (Without followers it skips copying the body into shared data.)
    pub followed: bool,
}

impl Marker {
    const EMPTY: Marker = Marker {
        state: State::Empty,
        tag: 0,
        seq: 0,
        until_ms: 0,
        followed: false,
    };

    fn encode(&self) -> Vec<u8> {
        // 30 bytes, allocated once (the marker is written per request).
        let mut b = Vec::with_capacity(30);
        b.extend_from_slice(&MAGIC);
        b.push(match self.state {
            State::Empty => 0,
            State::InFlight => 1,
            State::Done => 2,
            State::Failed => 3,
        });
        for v in [self.tag, self.seq, self.until_ms] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.push(u8::from(self.followed));
        b
    }

    /// Damaged or foreign bytes read as an empty slot (keeping no
    /// sequence: the next leader starts from 1, which no follower of the
    /// unreadable marker can be waiting for with a matching tag and seq).
    fn decode(b: &[u8]) -> Marker {
        if b.len() != 30 || b[..4] != MAGIC {
            return Marker::EMPTY;
        }
        let u = |o: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[o..o + 8]);
            u64::from_le_bytes(x)
        };
        let state = match b[4] {
            1 => State::InFlight,
            2 => State::Done,
            3 => State::Failed,
            _ => State::Empty,
        };
        Marker {
            state,
            tag: u(5),
            seq: u(13),
            until_ms: u(21),
            followed: b[29] == 1,
        }
    }
}

pub fn create(host: &mut impl Host, slots: u32) -> Result<(), HostError> {
    let empty = Marker::EMPTY.encode();
    for s in 0..slots {
        host.shared_create(&marker_key(s), &empty)?;
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Go upstream and publish the answer.
    Leader { seq: u64 },
    /// Wait for the leader with this sequence number.
    Follower { seq: u64 },
    /// The leader just finished: its answer is published.
    Late { seq: u64 },
    /// The slot is busy with another request: go upstream alone.
    Alone,
}

/// Join or lead the request `tag` in `slot`.
pub fn elect(
    host: &mut impl Host,
    slot: u32,
    tag: u64,
    now_ms: u64,
    leader_until_ms: u64,
) -> Result<Role, HostError> {
    let mut role = Role::Alone;
    cas_update(host, &marker_key(slot), |bytes| {
        let m = Marker::decode(bytes);
        let live = m.until_ms > now_ms;
        match m.state {
            State::InFlight if live && m.tag == tag => {
                role = Role::Follower { seq: m.seq };
                // Only the first follower writes; the rest only read.
                (!m.followed).then(|| {
                    Marker {
                        followed: true,
                        ..m
                    }
                    .encode()
                })
            }
            State::InFlight if live => {
                role = Role::Alone;
                None
            }
            State::Done if live && m.tag == tag => {
                role = Role::Late { seq: m.seq };
                None
            }
            _ => {
                let seq = m.seq.wrapping_add(1).max(1);
                role = Role::Leader { seq };
                Some(
                    Marker {
                        state: State::InFlight,
                        tag,
                        seq,
                        until_ms: leader_until_ms,
                        followed: false,
                    }
                    .encode(),
                )
            }
        }
    })?;
    Ok(role)
}

pub fn read(host: &impl Host, slot: u32) -> Marker {
    match host.shared_get(&marker_key(slot)) {
        Ok(Some((b, _))) => Marker::decode(&b),
        _ => Marker::EMPTY,
    }
}

/// End the leader's turn: `Done` (its result is published) until
/// `until_ms`, or `Failed`. Does nothing if the slot moved on.
pub fn finish(
    host: &mut impl Host,
    slot: u32,
    tag: u64,
    seq: u64,
    state: State,
    until_ms: u64,
) -> Result<(), HostError> {
    cas_update(host, &marker_key(slot), |bytes| {
        let m = Marker::decode(bytes);
        (m.state == State::InFlight && m.tag == tag && m.seq == seq).then(|| {
            Marker {
                state,
                tag,
                seq,
                until_ms,
                followed: m.followed,
            }
            .encode()
        })
    })
}

/// End the leader's turn now if nobody follows it (then its answer need
/// not be copied into shared data). Atomic with the followers' joining: a
/// request that joins later finds the turn over and leads its own.
pub fn finish_if_alone(
    host: &mut impl Host,
    slot: u32,
    tag: u64,
    seq: u64,
) -> Result<bool, HostError> {
    let mut alone = false;
    cas_update(host, &marker_key(slot), |bytes| {
        let m = Marker::decode(bytes);
        alone = m.state == State::InFlight && m.tag == tag && m.seq == seq && !m.followed;
        alone.then(|| {
            Marker {
                state: State::Failed,
                until_ms: 0,
                ..m
            }
            .encode()
        })
    })?;
    Ok(alone)
}

/// Publish the leader's answer (before marking the slot done, so a reader
/// that sees `Done` finds the result).
pub fn publish(host: &mut impl Host, slot: u32, seq: u64, entry: &Entry) -> Result<(), HostError> {
    let mut b = seq.to_le_bytes().to_vec();
    b.extend_from_slice(&entry.encode());
    host.shared_put(&result_key(slot), &b)
}

/// The published answer of leader `seq`, if that is what the slot holds.
pub fn result(host: &impl Host, slot: u32, seq: u64, key: &str) -> Option<Entry> {
    let (b, _) = host.shared_get(&result_key(slot)).ok()??;
    let stored_seq = u64::from_le_bytes(b.get(..8)?.try_into().ok()?);
    let e = Entry::decode(b.get(8..)?)?;
    (stored_seq == seq && e.key == key).then_some(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem_host::{MemHost, SharedStore};

    #[test]
    fn one_leader_then_followers_then_late_arrivals_then_a_new_leader() {
        let store = SharedStore::new_shared();
        let mut a = MemHost::with_store(store.clone());
        let mut b = MemHost::with_store(store.clone());
        create(&mut a, 4).unwrap();
        let seq = match elect(&mut a, 1, 42, 0, 1000).unwrap() {
            Role::Leader { seq } => seq,
            r => panic!("{r:?}"),
        };
        store.borrow_mut().inject_conflicts(3);
        assert_eq!(
            elect(&mut b, 1, 42, 5, 1000).unwrap(),
            Role::Follower { seq }
        );
        assert_eq!(
            elect(&mut b, 1, 7, 5, 1000).unwrap(),
            Role::Alone,
            "another request in the slot"
        );
        finish(&mut a, 1, 42, seq, State::Done, 300).unwrap();
        assert_eq!(read(&b, 1).state, State::Done);
        assert_eq!(elect(&mut b, 1, 42, 200, 1000).unwrap(), Role::Late { seq });
        // After the grace window the next request leads, with a new seq.
        assert_eq!(
            elect(&mut b, 1, 42, 301, 1000).unwrap(),
            Role::Leader { seq: seq + 1 }
        );
    }

    #[test]
    fn a_leader_without_followers_ends_its_turn_early() {
        let mut h = MemHost::new();
        create(&mut h, 1).unwrap();
        let Role::Leader { seq } = elect(&mut h, 0, 9, 0, 100).unwrap() else {
            panic!()
        };
        assert!(finish_if_alone(&mut h, 0, 9, seq).unwrap());
        // The next identical request leads a new turn.
        assert_eq!(
            elect(&mut h, 0, 9, 1, 100).unwrap(),
            Role::Leader { seq: seq + 1 }
        );
    }

    #[test]
    fn a_dead_leader_expires_and_a_stale_finish_is_ignored() {
        let mut h = MemHost::new();
        create(&mut h, 1).unwrap();
        let Role::Leader { seq } = elect(&mut h, 0, 1, 0, 100).unwrap() else {
            panic!()
        };
        let Role::Leader { seq: seq2 } = elect(&mut h, 0, 1, 100, 200).unwrap() else {
            panic!()
        };
        assert_ne!(seq, seq2);
        finish(&mut h, 0, 1, seq, State::Failed, 0).unwrap();
        assert_eq!(
            read(&h, 0).state,
            State::InFlight,
            "the old leader cannot end the new one's turn"
        );
    }

    #[test]
    fn results_belong_to_their_leader_and_damage_is_safe() {
        let mut h = MemHost::new();
        create(&mut h, 1).unwrap();
        let e = Entry {
            key: "k".into(),
            stored_ms: 0,
            initial_age_s: 0,
            fresh_until_ms: 0,
            swr_until_ms: 0,
            sie_until_ms: 0,
            keep_until_ms: 0,
            fetch_ms: 0,
            gens: vec![],
            body: crate::cache::entry::Body::Vary { names: vec![] },
        };
        publish(&mut h, 0, 5, &e).unwrap();
        assert!(result(&h, 0, 5, "k").is_some());
        assert!(result(&h, 0, 6, "k").is_none());
        assert!(result(&h, 0, 5, "other").is_none());
        h.shared_put("cost_optimizer/f/m/0", b"junk").unwrap();
        assert_eq!(read(&h, 0).state, State::Empty);
    }
}
