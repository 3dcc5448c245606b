//! Every (phase, event) pair against the transition table written out by
//! hand, so a change to `Phase::on` is a change to this table too.

use super::phase::{Event, Phase, Served, Wait};

const WAITS: [Wait; 4] = [Wait::Limit, Wait::Lease, Wait::Leader, Wait::Batch];
const SERVED: [Served; 5] = [
    Served::Cache,
    Served::Coalesced,
    Served::Batched { size: 3, index: 1 },
    Served::StaleOnError,
    Served::Refused,
];

fn phases() -> Vec<Phase> {
    let mut all = vec![
        Phase::Deciding,
        Phase::GatheringBody,
        Phase::ReadingPrompt,
        Phase::Upstream,
    ];
    all.extend(WAITS.map(Phase::Parked));
    all.extend(SERVED.map(Phase::Answered));
    all
}

fn events() -> Vec<Event> {
    let mut all = vec![
        Event::Forward,
        Event::AwaitBody,
        Event::Wake,
        Event::ReadPrompt,
    ];
    all.extend(WAITS.map(Event::Park));
    all.extend(SERVED.map(Event::Answer));
    all
}

/// The table: where each pair goes, `None` for no move.
fn expected(from: Phase, event: Event) -> Option<Phase> {
    match from {
        Phase::Deciding => Some(match event {
            Event::Park(w) => Phase::Parked(w),
            Event::Answer(s) => Phase::Answered(s),
            Event::Forward => Phase::Upstream,
            Event::AwaitBody => Phase::GatheringBody,
            Event::ReadPrompt => Phase::ReadingPrompt,
            Event::Wake => return None,
        }),
        Phase::Parked(_) => match event {
            Event::Wake => Some(Phase::Deciding),
            Event::Answer(s) => Some(Phase::Answered(s)),
            Event::Forward => Some(Phase::Upstream),
            _ => None,
        },
        Phase::GatheringBody => match event {
            Event::Park(Wait::Batch) => Some(Phase::Parked(Wait::Batch)),
            Event::Forward => Some(Phase::Upstream),
            _ => None,
        },
        Phase::ReadingPrompt => match event {
            Event::Wake => Some(Phase::Deciding),
            Event::Forward => Some(Phase::Upstream),
            _ => None,
        },
        Phase::Upstream => match event {
            Event::Answer(Served::StaleOnError) => Some(Phase::Answered(Served::StaleOnError)),
            _ => None,
        },
        Phase::Answered(_) => None,
    }
}

#[test]
fn every_phase_and_event_goes_where_the_table_says() {
    let mut pairs = 0;
    for from in phases() {
        for event in events() {
            assert_eq!(
                from.on(event),
                expected(from, event),
                "{from:?} on {event:?}"
            );
            pairs += 1;
        }
    }
    assert_eq!(pairs, 13 * 13);
}

#[test]
fn a_wait_resumes_after_the_stage_that_parked_it() {
    use super::phase::Stage;
    assert_eq!(Wait::Limit.resumes_at(), Stage::Budget);
    assert_eq!(Wait::Lease.resumes_at(), Stage::Budget);
    assert_eq!(Wait::Leader.resumes_at(), Stage::Batch);
    assert_eq!(Wait::Batch.resumes_at(), Stage::Route);
    let rest: Vec<Stage> = Stage::Coalesce.onwards().collect();
    assert_eq!(rest, vec![Stage::Coalesce, Stage::Batch, Stage::Route]);
}
