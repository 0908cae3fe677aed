//! The worker pool: threads that claim pending jobs and run them, and one supervisor thread
//! that heartbeats running jobs and requeues jobs whose owner died.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{JobContext, StopReason, HEARTBEAT, LEASE_MS};
use crate::error::{Error, Result};
use crate::ids::JobId;
use crate::store::JobStore;
use crate::types::{Job, JobStatus};

/// What runs a job: the engine's dispatch on the job's kind.
pub(crate) type Runner = Arc<dyn Fn(&Job, &JobContext) -> Result<()> + Send + Sync>;

/// How often idle workers look for jobs created by other processes.
const POLL: Duration = Duration::from_millis(250);
/// How often the supervisor looks for jobs whose owner died.
const ORPHAN_CHECK: Duration = Duration::from_secs(2);

struct Shared {
    jobs: Arc<dyn JobStore>,
    owner: String,
    stop: AtomicBool,
    running: Mutex<HashMap<JobId, JobContext>>,
    wake: (Mutex<u64>, Condvar),
}

/// Worker threads of one engine. Dropping the pool stops it: running jobs are asked to stop
/// and go back to `pending` for whichever engine opens the folder next.
pub(crate) struct WorkerPool {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl WorkerPool {
    /// Start `workers` threads (0: none; jobs wait for an engine that has some). Jobs left
    /// `processing` by a dead process are put back to `pending` first.
    pub fn start(workers: usize, jobs: Arc<dyn JobStore>, runner: Runner) -> Result<Self> {
        let shared = Arc::new(Shared {
            jobs,
            owner: owner_token(),
            stop: AtomicBool::new(false),
            running: Mutex::default(),
            wake: (Mutex::new(0), Condvar::new()),
        });
        let mut threads = Vec::new();
        if workers > 0 {
            shared.jobs.requeue_orphans(&is_dead)?;
            for i in 0..workers {
                let (shared, runner) = (shared.clone(), runner.clone());
                let t = std::thread::Builder::new()
                    .name(format!("videovector-worker-{i}"))
                    .spawn(move || work(&shared, &runner))
                    .map_err(|e| Error::Internal(format!("cannot start a worker thread: {e}")))?;
                threads.push(t);
            }
            let s = shared.clone();
            let t = std::thread::Builder::new()
                .name("videovector-supervisor".into())
                .spawn(move || supervise(&s))
                .map_err(|e| Error::Internal(format!("cannot start the job supervisor: {e}")))?;
            threads.push(t);
        }
        Ok(WorkerPool { shared, threads })
    }

    /// Whether this pool runs jobs at all.
    pub fn has_workers(&self) -> bool {
        !self.threads.is_empty()
    }

    /// Wake idle workers (a job was just created).
    pub fn notify(&self) {
        let (lock, cv) = &self.shared.wake;
        *lock.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        cv.notify_all();
    }

    /// Stop a job this pool runs, at once (the store's flag reaches other processes' pools
    /// through their supervisors).
    pub fn cancel_local(&self, job_id: &str) {
        if let Some(ctx) = self.shared.running.lock().unwrap_or_else(|p| p.into_inner()).get(job_id) {
            ctx.cancel();
        }
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for ctx in self.shared.running.lock().unwrap_or_else(|p| p.into_inner()).values() {
            ctx.shutdown();
        }
        self.notify();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn work(shared: &Shared, runner: &Runner) {
    while !shared.stop.load(Ordering::SeqCst) {
        match shared.jobs.claim_job(&shared.owner, LEASE_MS) {
            Ok(Some(job)) => run(shared, runner, job),
            Ok(None) | Err(_) => {
                // Nothing to do (or the store is busy): wait for a notify or the next poll.
                let (lock, cv) = &shared.wake;
                let seen = lock.lock().unwrap_or_else(|p| p.into_inner());
                let _ = cv.wait_timeout(seen, POLL);
            }
        }
    }
}

fn run(shared: &Shared, runner: &Runner, job: Job) {
    let ctx = JobContext::default();
    shared.running.lock().unwrap_or_else(|p| p.into_inner()).insert(job.job_id.clone(), ctx.clone());
    if shared.stop.load(Ordering::SeqCst) {
        ctx.shutdown();
    }
    // A panic in one job fails that job, not the worker.
    let outcome = catch_unwind(AssertUnwindSafe(|| runner(&job, &ctx)));
    shared.running.lock().unwrap_or_else(|p| p.into_inner()).remove(&job.job_id);
    let (id, owner) = (&job.job_id, shared.owner.as_str());
    let recorded = match outcome {
        Ok(Ok(())) => shared.jobs.finish_job(id, owner, JobStatus::Completed, None),
        Ok(Err(Error::Cancelled)) if ctx.stop_reason() == Some(StopReason::Shutdown) => {
            shared.jobs.release_job(id, owner)
        }
        Ok(Err(Error::Cancelled)) => shared.jobs.finish_job(id, owner, JobStatus::Cancelled, None),
        Ok(Err(e)) => shared.jobs.finish_job(id, owner, JobStatus::Failed, Some(&e.to_string())),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            let message = Error::Internal(format!("the job's worker panicked: {what}")).to_string();
            shared.jobs.finish_job(id, owner, JobStatus::Failed, Some(&message))
        }
    };
    // If even that write failed, the lease runs out and the job is run again.
    drop(recorded);
}

fn supervise(shared: &Shared) {
    let mut last_orphan_check = Instant::now();
    while !shared.stop.load(Ordering::SeqCst) {
        let running: Vec<(JobId, JobContext)> = shared
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(id, ctx)| (id.clone(), ctx.clone()))
            .collect();
        for (id, ctx) in running {
            if let Ok(true) = shared.jobs.heartbeat(&id, &shared.owner, &ctx.current_progress(), LEASE_MS) {
                ctx.cancel();
            }
        }
        if last_orphan_check.elapsed() >= ORPHAN_CHECK {
            last_orphan_check = Instant::now();
            if let Ok(requeued) = shared.jobs.requeue_orphans(&is_dead) {
                if !requeued.is_empty() {
                    let (lock, cv) = &shared.wake;
                    *lock.lock().unwrap_or_else(|p| p.into_inner()) += 1;
                    cv.notify_all();
                }
            }
        }
        std::thread::sleep(HEARTBEAT);
    }
}

/// `host/pid/nonce`: which process holds a job.
fn owner_token() -> String {
    format!("{}/{}/{}", host_name(), std::process::id(), crate::ids::new("w"))
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Whether the process behind an owner token is known to be gone: same host, and no such
/// process. Elsewhere (another host, or no `/proc`) only the lease tells.
fn is_dead(owner: &str) -> bool {
    let mut parts = owner.splitn(3, '/');
    let (Some(host), Some(pid)) = (parts.next(), parts.next().and_then(|p| p.parse::<u32>().ok())) else {
        return true;
    };
    host == host_name()
        && std::path::Path::new("/proc/self").exists()
        && !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_owner_is_dead_only_when_its_process_is_known_gone() {
        assert!(!is_dead(&owner_token()), "this process is alive");
        if std::path::Path::new("/proc/self").exists() {
            assert!(is_dead(&format!("{}/{}/w_1", host_name(), u32::MAX)));
        }
        assert!(!is_dead("another-host/1/w_1"), "another host: only its lease tells");
        assert!(is_dead("garbage"));
    }
}
