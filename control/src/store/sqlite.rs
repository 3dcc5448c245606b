//! The embedded store: one SQLite file in WAL mode with `synchronous=FULL`,
//! so a commit has been fsynced to the WAL before it returns and an
//! acknowledged write survives a crash or power loss.
//!
//! All writes go through one writer thread that does group commit: it takes
//! every job waiting in its queue (up to a bound), runs each inside its own
//! savepoint of one transaction, commits once (one fsync) and only then
//! answers every job. Reads use a small pool of read connections, which WAL
//! lets run beside the writer.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::Connection;
use tokio::sync::oneshot;

use super::sqlite_reads as r;
use super::sqlite_sql as q;
use super::{Store, StoreError, StoreResult};
use crate::ledger;
use crate::model::{
    Alert, Allowance, AllowanceRequest, Budget, IngestOutcome, PurgeEntry, PurgeKind, ReportQuery,
    ReportRow, Snapshot, SpendBatch, TenantState,
};

/// A job runs on the writer's connection and hands back what to do once the
/// commit outcome is known.
type Done = Box<dyn FnOnce(Result<(), String>) + Send>;
type Job = Box<dyn FnOnce(&Connection) -> Done + Send>;

const MAX_GROUP: usize = 256;

/// Runs a ledger step on a SQLite connection to completion. SQLite's
/// `LedgerTx` methods never await (rusqlite is synchronous), so the future
/// is ready at its first poll; one that is not would be a bug, answered as
/// an error rather than a hang.
fn now<T>(step: impl std::future::Future<Output = StoreResult<T>>) -> StoreResult<T> {
    struct Noop;
    impl std::task::Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }
    let waker = std::task::Waker::from(Arc::new(Noop));
    let mut cx = std::task::Context::from_waker(&waker);
    match std::pin::pin!(step).as_mut().poll(&mut cx) {
        std::task::Poll::Ready(out) => out,
        std::task::Poll::Pending => Err(StoreError::Backend(
            "a sqlite ledger step awaited something".into(),
        )),
    }
}

pub struct SqliteStore {
    writer: Mutex<mpsc::Sender<Job>>,
    readers: Arc<Mutex<Vec<Connection>>>,
    path: PathBuf,
}

fn open_conn(path: &Path) -> StoreResult<Connection> {
    let c = Connection::open(path).map_err(q::err)?;
    c.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 10000;
         PRAGMA foreign_keys = OFF;",
    )
    .map_err(q::err)?;
    Ok(c)
}

impl SqliteStore {
    pub fn open(path: impl AsRef<Path>) -> StoreResult<Self> {
        let path = path.as_ref().to_path_buf();
        let conn = open_conn(&path)?;
        conn.execute_batch(q::SCHEMA).map_err(q::err)?;
        q::migrate(&conn)?;
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer_loop(conn, rx))
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        Ok(Self {
            writer: Mutex::new(tx),
            readers: Arc::new(Mutex::new(Vec::new())),
            path,
        })
    }

    async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<StoreResult<T>>();
        let job: Job = Box::new(move |c: &Connection| -> Done {
            if let Err(e) = c.execute_batch("SAVEPOINT job") {
                let e = q::err(e);
                return Box::new(move |_| {
                    let _ = tx.send(Err(e));
                });
            }
            match f(c) {
                Ok(v) => {
                    let _ = c.execute_batch("RELEASE job");
                    Box::new(move |commit: Result<(), String>| {
                        let _ = tx.send(commit.map(|_| v).map_err(StoreError::Backend));
                    })
                }
                Err(e) => {
                    let _ = c.execute_batch("ROLLBACK TO job; RELEASE job");
                    Box::new(move |_| {
                        let _ = tx.send(Err(e));
                    })
                }
            }
        });
        let sent = self
            .writer
            .lock()
            .map_err(|_| StoreError::Backend("writer lock poisoned".into()))?
            .send(job);
        sent.map_err(|_| StoreError::Backend("sqlite writer stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Backend("sqlite writer dropped a job".into()))?
    }

    async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let pool = self.readers.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = pool.lock().ok().and_then(|mut p| p.pop());
            let conn = match pooled {
                Some(c) => c,
                None => open_conn(&path)?,
            };
            // One read transaction so multi-query reads are consistent.
            conn.execute_batch("BEGIN").map_err(q::err)?;
            let out = f(&conn);
            let _ = conn.execute_batch("COMMIT");
            if let Ok(mut p) = pool.lock() {
                if p.len() < 8 {
                    p.push(conn);
                }
            }
            out
        })
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))?
    }
}

fn writer_loop(conn: Connection, rx: mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            let msg = e.to_string();
            for job in jobs {
                // Run nothing; answer every job with the failure.
                let done = job(&conn);
                done(Err(msg.clone()));
            }
            continue;
        }
        let dones: Vec<Done> = jobs.into_iter().map(|job| job(&conn)).collect();
        let outcome = conn.execute_batch("COMMIT").map_err(|e| e.to_string());
        if outcome.is_err() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        for done in dones {
            done(outcome.clone());
        }
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        self.read(|c| q::version(c).map(|_| ())).await
    }

    async fn put_budget(&self, budget: Budget, now_ms: i64) -> StoreResult<TenantState> {
        self.write(move |c| now(ledger::put_budget(c, &budget, now_ms)))
            .await
    }

    async fn budgets(&self, tenant: Option<&str>, now_ms: i64) -> StoreResult<Vec<TenantState>> {
        let tenant = tenant.map(str::to_owned);
        self.read(move |c| now(ledger::states(c, tenant.as_deref(), now_ms)))
            .await
    }

    async fn ingest(&self, batch: SpendBatch, now_ms: i64) -> StoreResult<IngestOutcome> {
        self.write(move |c| now(ledger::ingest(c, &batch, now_ms)))
            .await
    }

    async fn grant(&self, req: AllowanceRequest, now_ms: i64) -> StoreResult<Allowance> {
        self.write(move |c| now(ledger::grant(c, &req, now_ms)))
            .await
    }

    async fn release(&self, allowance_id: &str, now_ms: i64) -> StoreResult<i64> {
        let id = allowance_id.to_owned();
        self.write(move |c| now(ledger::release(c, &id, now_ms)))
            .await
    }

    async fn expire_leases(&self, now_ms: i64) -> StoreResult<u64> {
        self.write(move |c| now(ledger::expire(c, now_ms))).await
    }

    async fn version(&self) -> StoreResult<i64> {
        self.read(q::version).await
    }

    async fn snapshot(&self, now_ms: i64) -> StoreResult<Snapshot> {
        self.read(move |c| {
            Ok(Snapshot {
                version: q::version(c)?.to_string(),
                generated_at_ms: now_ms,
                tenants: now(ledger::states(c, None, now_ms))?,
                purges: r::purges(c)?,
            })
        })
        .await
    }

    async fn purge(&self, tenant: &str, kind: PurgeKind, value: &str) -> StoreResult<PurgeEntry> {
        let (t, v) = (tenant.to_owned(), value.to_owned());
        self.write(move |c| r::purge(c, &t, kind, &v)).await
    }

    async fn alerts(&self, tenant: Option<&str>, limit: i64) -> StoreResult<Vec<Alert>> {
        let tenant = tenant.map(str::to_owned);
        self.read(move |c| r::alerts(c, tenant.as_deref(), limit))
            .await
    }

    async fn alert_attempted(&self, id: i64, attempts: i32, delivered: bool) -> StoreResult<()> {
        self.write(move |c| {
            c.execute(
                "UPDATE alerts SET attempts = ?2, delivered = ?3 WHERE id = ?1",
                rusqlite::params![id, attempts, delivered],
            )
            .map(|_| ())
            .map_err(q::err)
        })
        .await
    }

    async fn report(&self, query: ReportQuery) -> StoreResult<Vec<ReportRow>> {
        self.read(move |c| r::report(c, &query)).await
    }
}
