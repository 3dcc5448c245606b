use super::*;

#[test]
fn cas_write_with_stale_token_fails() {
    let mut host = MemHost::new();
    assert_eq!(host.shared_create("k", b"a"), Ok(true));
    assert_eq!(host.shared_create("k", b"b"), Ok(false));
    let (v, cas) = host.shared_get("k").unwrap().unwrap();
    assert_eq!(v, b"a");
    host.shared_set("k", b"c", cas).unwrap();
    assert_eq!(host.shared_set("k", b"d", cas), Err(HostError::CasMismatch));
    assert_eq!(host.shared.borrow().value("k"), Some(&b"c"[..]));
}

#[test]
fn injected_conflicts_fail_then_clear() {
    let store = SharedStore::new_shared();
    let mut a = MemHost::with_store(store.clone());
    let b = MemHost::with_store(store.clone());
    a.shared_create("k", b"0").unwrap();
    store.borrow_mut().inject_conflicts(2);
    let (_, cas) = a.shared_get("k").unwrap().unwrap();
    assert_eq!(a.shared_set("k", b"1", cas), Err(HostError::CasMismatch));
    let (_, cas) = b.shared_get("k").unwrap().unwrap();
    assert_eq!(a.shared_set("k", b"1", cas), Err(HostError::CasMismatch));
    let (_, cas) = b.shared_get("k").unwrap().unwrap();
    assert_eq!(a.shared_set("k", b"1", cas), Ok(()));
    assert_eq!(b.shared_get("k").unwrap().unwrap().0, b"1");
}

#[test]
fn set_on_missing_key_is_refused() {
    let mut host = MemHost::new();
    assert_eq!(host.shared_set("nope", b"x", 0), Err(HostError::NotFound));
}

#[test]
fn replies_to_gone_streams_fail() {
    let mut host = MemHost::new();
    host.gone.insert(7);
    let reply = |headers: &'static [(&'static str, &'static [u8])]| Wake::Reply {
        status: 200,
        headers,
        body: b"x",
    };
    assert_eq!(host.wake(7, reply(&[])), Err(HostError::BadArgument));
    assert_eq!(host.wake(7, Wake::Resume), Err(HostError::BadArgument));
    assert!(host.wake(8, reply(&[("a", b"b")])).is_ok());
    assert_eq!(host.replies[0].header("A"), Some("b"));
}

#[test]
fn counters_are_named() {
    let mut host = MemHost::new();
    let a = host.define_counter("a").unwrap();
    let b = host.define_counter("b").unwrap();
    assert_eq!(host.define_counter("a"), Some(a));
    host.increment(a, 2);
    host.increment(b, 1);
    host.increment(a, 3);
    assert_eq!(host.counter("a"), 5);
    assert_eq!(host.counter("b"), 1);
}
