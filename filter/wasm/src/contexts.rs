//! Root and HTTP contexts. The root parses config once per worker and
//! builds the shared, immutable `Filter`; the worker's state (with every
//! matched request's `Exchange`) is one `Worker` the root and the HTTP
//! contexts share. An HTTP context keeps only its id and whether a rule
//! matched, and hands every hook to the core pipeline.

use std::cell::RefCell;
use std::rc::Rc;

use crate::sdk::{Action, Context, ContextType, HttpContext, RootContext};
use optimizer_core::config;
use optimizer_core::host::{Host, Level};
use optimizer_core::pipeline::{self, Filter, Verdict, Worker};

use crate::host_adapter::ProxyHost;

const NAME: &str = "cost-optimizer";

pub struct FilterRoot {
    id: u32,
    filter: Option<Rc<Filter>>,
    worker: Option<Rc<RefCell<Worker>>>,
    ended: Ended,
}

/// Streams that ended while the worker state was busy (a host call made
/// from inside a hook ran another stream's `on_done`): their requests
/// leave the worker's table at the next hook or tick, so none is kept
/// forever.
type Ended = Rc<RefCell<Vec<u32>>>;

fn finish_ended(filter: &Filter, worker: &mut Worker, ended: &Ended) {
    let ids = match ended.try_borrow_mut() {
        Ok(mut e) if !e.is_empty() => std::mem::take(&mut *e),
        _ => return,
    };
    for id in ids {
        // Run from inside another hook, maybe a filter hook: replies to
        // other streams are held (see `ProxyHost::wake`) and sent by the
        // caller's next flush.
        let mut host = ProxyHost::stream(filter.config.host, id).in_filter_hook();
        pipeline::on_done(filter, worker, &mut host, id);
    }
}

impl FilterRoot {
    pub fn new(id: u32) -> Self {
        FilterRoot {
            id,
            filter: None,
            worker: None,
            ended: Ended::default(),
        }
    }

    fn host(&self) -> ProxyHost {
        let kind = self
            .filter
            .as_ref()
            .map(|f| f.config.host)
            .unwrap_or_default();
        ProxyHost::root(kind, self.id)
    }
}

impl Context for FilterRoot {
    fn on_http_call_response(
        &mut self,
        token: u32,
        _headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        let (Some(filter), Some(worker)) = (self.filter.as_ref(), self.worker.as_ref()) else {
            return;
        };
        crate::held_replies::send(self.id);
        let mut host = ProxyHost::root(filter.config.host, self.id);
        let Ok(mut worker) = worker.try_borrow_mut() else {
            return;
        };
        finish_ended(filter, &mut worker, &self.ended);
        pipeline::on_callout_response(filter, &mut worker, &mut host, token, body_size);
    }

    /// Envoy 1.40 calls this on every worker when it stops (SIGTERM) or
    /// drops the filter; Kong's engine (ngx_wasm_module 3bed2783) does not
    /// call it at all (both checked). The spend the worker still holds
    /// goes to the log (`pipeline::on_shutdown`).
    fn on_done(&mut self) -> bool {
        let (Some(filter), Some(worker)) = (self.filter.as_ref(), self.worker.as_ref()) else {
            return true;
        };
        let mut host = ProxyHost::root(filter.config.host, self.id);
        if let Ok(mut worker) = worker.try_borrow_mut() {
            finish_ended(filter, &mut worker, &self.ended);
            pipeline::on_shutdown(filter, &mut worker, &mut host);
        }
        true
    }
}

impl RootContext for FilterRoot {
    fn on_vm_start(&mut self, _size: usize) -> bool {
        self.host().log(
            Level::Info,
            &format!(
                "[{}] {NAME} {} ({}) started",
                self.id,
                optimizer_core::VERSION,
                env!("GIT_HASH")
            ),
        );
        true
    }

    fn on_configure(&mut self, _size: usize) -> bool {
        let Some(bytes) = crate::host_adapter::plugin_configuration(self.id) else {
            return false;
        };
        match config::parse(&bytes) {
            Ok(cfg) => {
                let mut host = ProxyHost::root(cfg.host, self.id);
                let routes = cfg.routes.len();
                let mut worker = Worker::new(&cfg, &mut host);
                let filter = Filter::new(cfg, &mut host);
                if let Err(e) = filter.create_tables(&mut host) {
                    host.log(
                        Level::Error,
                        &format!(
                            "[{}] {NAME} cannot create its shared-data tables: {e:?}",
                            self.id
                        ),
                    );
                    return false;
                }
                if filter.has_timer() {
                    // The timer answers followers of leaders on other
                    // workers, admits queued requests, sends batches and
                    // the held counter sums, checks the cache's epoch; it ticks fast only while
                    // someone waits (always on Kong when a rule can park:
                    // only the root sets it).
                    pipeline::start_timer(&filter, &mut worker, &mut host);
                }
                self.filter = Some(Rc::new(filter));
                self.worker = Some(Rc::new(RefCell::new(worker)));
                host.log(
                    Level::Info,
                    &format!("[{}] {NAME} configured with {routes} routes", self.id),
                );
                true
            }
            Err(e) => {
                // Returning false makes the gateway refuse the filter; the
                // message names the field to fix.
                self.host().log(
                    Level::Error,
                    &format!("[{}] {NAME} invalid configuration: {e}", self.id),
                );
                false
            }
        }
    }

    fn on_tick(&mut self) {
        let (Some(filter), Some(worker)) = (self.filter.as_ref(), self.worker.as_ref()) else {
            return;
        };
        crate::held_replies::send(self.id);
        let mut host = ProxyHost::root(filter.config.host, self.id);
        let Ok(mut worker) = worker.try_borrow_mut() else {
            return;
        };
        finish_ended(filter, &mut worker, &self.ended);
        pipeline::on_tick(filter, &mut worker, &mut host);
        crate::heap::report(filter.config.host);
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(StreamContext {
            id: context_id,
            filter: self.filter.clone(),
            worker: self.worker.clone(),
            ended: self.ended.clone(),
            matched: false,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct StreamContext {
    id: u32,
    filter: Option<Rc<Filter>>,
    worker: Option<Rc<RefCell<Worker>>>,
    ended: Ended,
    /// A rule matched: the worker's table holds this request. Unmatched
    /// requests skip every later hook without borrowing the worker.
    matched: bool,
}

/// Which kind of a stream's hook runs: the host reads the result of a
/// request or response hook as the stream's filter status, and not that
/// of the others (`on_done`, a callout answer).
#[derive(Clone, Copy)]
enum Hook {
    Request,
    Response,
    Other,
}

fn action(v: Verdict) -> Action {
    match v {
        Verdict::Continue => Action::Continue,
        Verdict::Pause => Action::Pause,
    }
}

impl StreamContext {
    /// Run `f` with the worker state borrowed; `None` when the request is
    /// not the filter's (no rule matched, no config) or the worker state
    /// is busy (a re-entrant host call).
    fn with_worker<R>(
        &mut self,
        f: impl FnOnce(&Filter, &mut Worker, &mut ProxyHost, u32) -> R,
    ) -> Option<R> {
        self.with_worker_in(Hook::Other, f)
    }

    /// [`Self::with_worker`], telling the host view which kind of hook
    /// runs.
    fn with_worker_in<R>(
        &mut self,
        hook: Hook,
        f: impl FnOnce(&Filter, &mut Worker, &mut ProxyHost, u32) -> R,
    ) -> Option<R> {
        if !self.matched {
            return None;
        }
        let filter = self.filter.as_ref()?;
        let mut worker = self.worker.as_ref()?.try_borrow_mut().ok()?;
        let mut host = ProxyHost::stream(filter.config.host, self.id);
        host = match hook {
            Hook::Request => host.in_filter_hook(),
            Hook::Response => host.in_response().in_filter_hook(),
            Hook::Other => host,
        };
        Some(f(filter, &mut worker, &mut host, self.id))
    }
}

impl Context for StreamContext {
    /// The answer to a call this request made: its wake call (Kong).
    fn on_http_call_response(
        &mut self,
        token: u32,
        _headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        crate::held_replies::send(self.id);
        self.with_worker(|filter, worker, host, id| {
            pipeline::on_stream_callout_response(filter, worker, host, id, token, body_size)
        });
    }

    fn on_done(&mut self) -> bool {
        crate::local_reply::forget(self.id);
        crate::held_replies::send(self.id);
        let done = self.with_worker(pipeline::on_done);
        if self.matched && done.is_none() {
            if let Ok(mut ended) = self.ended.try_borrow_mut() {
                ended.push(self.id);
            }
        }
        self.matched = false;
        true
    }
}

impl HttpContext for StreamContext {
    fn on_http_request_headers(&mut self, _n: usize, end_of_stream: bool) -> Action {
        let (Some(filter), Some(worker)) = (self.filter.as_ref(), self.worker.as_ref()) else {
            return Action::Continue;
        };
        let mut host = ProxyHost::stream(filter.config.host, self.id).in_filter_hook();
        let Ok(mut worker) = worker.try_borrow_mut() else {
            return Action::Continue;
        };
        finish_ended(filter, &mut worker, &self.ended);
        let ends = host.request_ends_at_headers(end_of_stream);
        let verdict =
            pipeline::on_request_headers_eos(filter, &mut worker, &mut host, self.id, ends);
        self.matched = worker.requests.contains_key(&self.id);
        action(verdict)
    }

    fn on_http_request_body(&mut self, size: usize, end_of_stream: bool) -> Action {
        self.with_worker_in(Hook::Request, |filter, worker, host, id| {
            action(pipeline::on_request_body(
                filter,
                worker,
                host,
                id,
                size,
                end_of_stream,
            ))
        })
        .unwrap_or(Action::Continue)
    }

    fn on_http_response_headers(&mut self, _n: usize, end_of_stream: bool) -> Action {
        crate::local_reply::on_headers(self.id);
        let verdict = self.with_worker_in(Hook::Response, |filter, worker, host, id| {
            pipeline::on_response_headers(filter, worker, host, id, end_of_stream)
        });
        if crate::local_reply::rewritten(self.id) {
            // Kong: answered by rewriting this response, which goes on.
            return Action::Continue;
        }
        verdict.map(action).unwrap_or(Action::Continue)
    }

    fn on_http_response_body(&mut self, size: usize, end_of_stream: bool) -> Action {
        if crate::local_reply::on_body(self.id, size, end_of_stream) == Some(true) {
            return Action::Pause;
        }
        self.with_worker_in(Hook::Response, |filter, worker, host, id| {
            action(pipeline::on_response_body(
                filter,
                worker,
                host,
                id,
                size,
                end_of_stream,
            ))
        })
        .unwrap_or(Action::Continue)
    }
}
