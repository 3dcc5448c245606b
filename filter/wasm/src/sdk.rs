//! The module's proxy-wasm exports and the contexts behind them, in place
//! of the Rust SDK's dispatcher.
//!
//! Why not the SDK: an answer to an HTTP callout reaches the module only
//! through the exported `proxy_on_http_call_response`, and the SDK's export
//! routes it by the tokens its own `dispatch_http_call` recorded (any
//! other token is `expect("invalid token_id")`), while that
//! `dispatch_http_call` panics on every status but Ok, BadArgument and
//! InternalFailure. An export cannot be defined twice in one module (the
//! link fails, "symbol multiply defined"), so making the callout through
//! `abi` with a status return means owning the exports. Every export the
//! SDK had is kept: Kong's engine calls each `proxy_on_*` without checking
//! that it exists.
//!
//! Nothing here panics on what a host passes: an unknown context id, an
//! unknown callout token or a context deleted while its hook runs are
//! ignored. A hook borrows its context through the context's own cell, not
//! the tables, so a host call that re-enters the module for another
//! context finds the tables free (and one for the same context is
//! ignored).

use std::cell::RefCell;
use std::rc::Rc;

use hashbrown::HashMap;

use crate::abi;

/// What the host does with a stream after a hook.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Continue = 0,
    Pause = 1,
}

/// The kind of context a root creates for its streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextType {
    HttpContext,
}

/// Hooks every context has.
pub trait Context {
    /// The answer to a callout this context made.
    fn on_http_call_response(
        &mut self,
        _token: u32,
        _headers: usize,
        _body: usize,
        _trailers: usize,
    ) {
    }
    /// The context ends; `true` when it is done at once.
    fn on_done(&mut self) -> bool {
        true
    }
    fn on_log(&mut self) {}
}

/// The per-plugin context: configuration, timer, stream creation.
pub trait RootContext: Context {
    fn on_vm_start(&mut self, _size: usize) -> bool {
        true
    }
    fn on_configure(&mut self, _size: usize) -> bool {
        true
    }
    fn on_tick(&mut self) {}
    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        None
    }
    fn get_type(&self) -> Option<ContextType> {
        None
    }
}

/// An HTTP stream's context.
pub trait HttpContext: Context {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        Action::Continue
    }
    fn on_http_request_body(&mut self, _size: usize, _end_of_stream: bool) -> Action {
        Action::Continue
    }
    fn on_http_response_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        Action::Continue
    }
    fn on_http_response_body(&mut self, _size: usize, _end_of_stream: bool) -> Action {
        Action::Continue
    }
}

type NewRoot = fn(u32) -> Box<dyn RootContext>;

/// A context in its table: shared so that a hook can run on it while the
/// table is free for other calls (a hook's host call may re-enter the
/// module, and the host may delete the context meanwhile).
type Shared<C> = Rc<RefCell<Box<C>>>;

#[derive(Default)]
struct Dispatcher {
    new_root: Option<NewRoot>,
    roots: HashMap<u32, Shared<dyn RootContext>>,
    streams: HashMap<u32, Shared<dyn HttpContext>>,
    /// Callout token → the context that made the call.
    callouts: HashMap<u32, u32>,
    /// The context whose hook runs (a callout it makes answers it).
    active: u32,
}

thread_local! {
    static DISPATCHER: RefCell<Dispatcher> = RefCell::new(Dispatcher::default());
}

fn with<R>(f: impl FnOnce(&mut Dispatcher) -> R) -> R {
    DISPATCHER.with(|d| f(&mut d.borrow_mut()))
}

/// Run `f` on context `id` of `table`, `None` when there is no such
/// context (unknown, or its hook already runs further up the stack).
///
/// One table lookup per hook: the context stays in its table and is
/// borrowed through its own cell (issue 18: taking it out and putting it
/// back, with a set of running contexts beside, was five hash-table
/// operations per hook on every request, matched or not). A context the
/// host deletes while its hook runs leaves the table at once and is
/// dropped when the hook returns.
fn run<C: ?Sized, R>(
    id: u32,
    table: fn(&mut Dispatcher) -> &mut HashMap<u32, Shared<C>>,
    f: impl FnOnce(&mut C) -> R,
) -> Option<R> {
    let (context, outer) = with(|d| {
        let context = table(d).get(&id)?.clone();
        let outer = std::mem::replace(&mut d.active, id);
        Some((context, outer))
    })?;
    let r = context.try_borrow_mut().ok().map(|mut c| f(&mut **c));
    with(|d| d.active = outer);
    r
}

fn roots(d: &mut Dispatcher) -> &mut HashMap<u32, Shared<dyn RootContext>> {
    &mut d.roots
}

fn streams(d: &mut Dispatcher) -> &mut HashMap<u32, Shared<dyn HttpContext>> {
    &mut d.streams
}

fn is_stream(id: u32) -> bool {
    with(|d| d.streams.contains_key(&id))
}

/// The factory of root contexts (from `_initialize`).
pub fn set_root_context(new_root: NewRoot) {
    with(|d| d.new_root = Some(new_root));
}

/// Remember that callout `token` answers the context whose hook runs.
pub fn register_callout(token: u32) {
    with(|d| {
        let active = d.active;
        d.callouts.insert(token, active);
    });
}

#[cfg(target_os = "wasi")]
extern "C" {
    fn __wasm_call_ctors();
}

/// The module's start (wasi reactor): static constructors, a panic hook
/// that logs (a panic still traps; the hook says where), the root factory.
#[no_mangle]
pub extern "C" fn _initialize() {
    // SAFETY: called once by the host before any other export, as
    // wasi-libc's reactor start does.
    #[cfg(target_os = "wasi")]
    unsafe {
        __wasm_call_ctors()
    };
    std::panic::set_hook(Box::new(|info| abi::log(5, &info.to_string())));
    set_root_context(|id| Box::new(crate::contexts::FilterRoot::new(id)));
}

#[no_mangle]
pub extern "C" fn proxy_abi_version_0_2_1() {}

/// Memory the host fills for the module (header maps, buffers); `abi`
/// takes it back as a `Vec` of this length.
#[no_mangle]
pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
    let mut v: Vec<u8> = Vec::with_capacity(size);
    let p = v.as_mut_ptr();
    std::mem::forget(v);
    p
}

#[no_mangle]
pub extern "C" fn proxy_on_context_create(context_id: u32, root_context_id: u32) {
    if root_context_id == 0 {
        let Some(new_root) = with(|d| d.new_root) else {
            return;
        };
        let root = Rc::new(RefCell::new(new_root(context_id)));
        with(|d| d.roots.insert(context_id, root));
        return;
    }
    // As the SDK: a root whose type is not an HTTP context has no streams.
    let stream = run(root_context_id, roots, |root| match root.get_type() {
        Some(ContextType::HttpContext) => root.create_http_context(context_id),
        None => None,
    })
    .flatten();
    if let Some(stream) = stream {
        let stream = Rc::new(RefCell::new(stream));
        with(|d| d.streams.insert(context_id, stream));
    }
}

#[no_mangle]
pub extern "C" fn proxy_on_vm_start(context_id: u32, size: usize) -> bool {
    run(context_id, roots, |r| r.on_vm_start(size)).unwrap_or(false)
}

#[no_mangle]
pub extern "C" fn proxy_on_configure(context_id: u32, size: usize) -> bool {
    run(context_id, roots, |r| r.on_configure(size)).unwrap_or(false)
}

#[no_mangle]
pub extern "C" fn proxy_on_tick(context_id: u32) {
    run(context_id, roots, |r| r.on_tick());
}

#[no_mangle]
pub extern "C" fn proxy_on_queue_ready(_context_id: u32, _queue_id: u32) {}

#[no_mangle]
pub extern "C" fn proxy_on_done(context_id: u32) -> bool {
    if is_stream(context_id) {
        run(context_id, streams, |s| s.on_done()).unwrap_or(true)
    } else {
        run(context_id, roots, |r| r.on_done()).unwrap_or(true)
    }
}

#[no_mangle]
pub extern "C" fn proxy_on_log(context_id: u32) {
    if is_stream(context_id) {
        run(context_id, streams, |s| s.on_log());
    } else {
        run(context_id, roots, |r| r.on_log());
    }
}

#[no_mangle]
pub extern "C" fn proxy_on_delete(context_id: u32) {
    // Outside the dispatcher's borrow: dropping a context runs its Drop.
    let gone = with(|d| {
        d.callouts.retain(|_, c| *c != context_id);
        (d.streams.remove(&context_id), d.roots.remove(&context_id))
    });
    drop(gone);
}

#[no_mangle]
pub extern "C" fn proxy_on_request_headers(context_id: u32, headers: usize, eos: bool) -> Action {
    run(context_id, streams, |s| {
        s.on_http_request_headers(headers, eos)
    })
    .unwrap_or(Action::Continue)
}

#[no_mangle]
pub extern "C" fn proxy_on_request_body(context_id: u32, size: usize, eos: bool) -> Action {
    run(context_id, streams, |s| s.on_http_request_body(size, eos)).unwrap_or(Action::Continue)
}

#[no_mangle]
pub extern "C" fn proxy_on_request_trailers(_context_id: u32, _trailers: usize) -> Action {
    Action::Continue
}

#[no_mangle]
pub extern "C" fn proxy_on_response_headers(context_id: u32, headers: usize, eos: bool) -> Action {
    run(context_id, streams, |s| {
        s.on_http_response_headers(headers, eos)
    })
    .unwrap_or(Action::Continue)
}

#[no_mangle]
pub extern "C" fn proxy_on_response_body(context_id: u32, size: usize, eos: bool) -> Action {
    run(context_id, streams, |s| s.on_http_response_body(size, eos)).unwrap_or(Action::Continue)
}

#[no_mangle]
pub extern "C" fn proxy_on_response_trailers(_context_id: u32, _trailers: usize) -> Action {
    Action::Continue
}

/// A callout's answer goes to the context that made the call, acted on
/// through `set_effective_context`; an answer for a token this module did
/// not record, or for a context that is gone, is dropped.
#[no_mangle]
pub extern "C" fn proxy_on_http_call_response(
    _context_id: u32,
    token: u32,
    headers: usize,
    body: usize,
    trailers: usize,
) {
    let Some(context_id) = with(|d| d.callouts.remove(&token)) else {
        return;
    };
    if abi::set_effective_context(context_id) != abi::OK {
        return;
    }
    if is_stream(context_id) {
        run(context_id, streams, |s| {
            s.on_http_call_response(token, headers, body, trailers)
        });
    } else {
        run(context_id, roots, |r| {
            r.on_http_call_response(token, headers, body, trailers)
        });
    }
}

// The filter is an HTTP filter and makes no gRPC calls and no foreign
// function callbacks: these answer nothing, and exist because Kong's
// engine calls every export without checking that it exists.

#[no_mangle]
pub extern "C" fn proxy_on_new_connection(_context_id: u32) -> Action {
    Action::Continue
}

#[no_mangle]
pub extern "C" fn proxy_on_downstream_data(_context_id: u32, _size: usize, _eos: bool) -> Action {
    Action::Continue
}

#[no_mangle]
pub extern "C" fn proxy_on_downstream_connection_close(_context_id: u32, _peer: u32) {}

#[no_mangle]
pub extern "C" fn proxy_on_upstream_data(_context_id: u32, _size: usize, _eos: bool) -> Action {
    Action::Continue
}

#[no_mangle]
pub extern "C" fn proxy_on_upstream_connection_close(_context_id: u32, _peer: u32) {}

#[no_mangle]
pub extern "C" fn proxy_on_grpc_receive_initial_metadata(
    _context_id: u32,
    _token: u32,
    _headers: u32,
) {
}

#[no_mangle]
pub extern "C" fn proxy_on_grpc_receive(_context_id: u32, _token: u32, _size: usize) {}

#[no_mangle]
pub extern "C" fn proxy_on_grpc_receive_trailing_metadata(
    _context_id: u32,
    _token: u32,
    _trailers: u32,
) {
}

#[no_mangle]
pub extern "C" fn proxy_on_grpc_close(_context_id: u32, _token: u32, _status: u32) {}

#[no_mangle]
pub extern "C" fn proxy_on_foreign_function(_context_id: u32, _function_id: u32, _size: usize) {}
