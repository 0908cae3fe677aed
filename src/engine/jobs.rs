//! `engine.jobs()` and `engine.events()`: long work and the log of what changed.

use std::time::{Duration, Instant};

use super::Engine;
use crate::error::{Error, Result};
use crate::types::{Event, Job, JobStatus, Page, PageRequest};

/// How often waiting callers read a job's state.
const WAIT_POLL: Duration = Duration::from_millis(50);
/// Most events one read returns.
pub const MAX_EVENTS: usize = 1000;

/// Jobs: every long operation (an ingest today) with its status, progress and error.
pub struct Jobs<'a> {
    engine: &'a Engine,
}

impl<'a> Jobs<'a> {
    pub(super) fn new(engine: &'a Engine) -> Self {
        Jobs { engine }
    }

    /// Jobs in creation order, optionally of one status.
    pub fn list(&self, status: Option<JobStatus>, page: &PageRequest) -> Result<Page<Job>> {
        self.engine.stores().jobs.list_jobs(status, page)
    }

    pub fn get(&self, job_id: &str) -> Result<Job> {
        self.engine.stores().jobs.job(job_id)
    }

    /// Cancel a job: a pending one ends `cancelled` at once; a running one stops at its next
    /// check (between frames, windows and batches: well within a second) and ends `cancelled`,
    /// whichever process runs it. A finished job is returned as it is.
    pub fn cancel(&self, job_id: &str) -> Result<Job> {
        let job = self.engine.stores().jobs.cancel_job(job_id)?;
        self.engine.pool().cancel_local(job_id);
        Ok(job)
    }

    /// Wait until a job is finished (or `timeout` passes: then the job as it is now).
    pub fn wait(&self, job_id: &str, timeout: Option<Duration>) -> Result<Job> {
        self.wait_with(job_id, timeout, &mut |_| {})
    }

    /// [`Jobs::wait`], calling `on_progress` with the job's state while it runs.
    pub fn wait_with(&self, job_id: &str, timeout: Option<Duration>, on_progress: &mut dyn FnMut(&Job)) -> Result<Job> {
        let started = Instant::now();
        loop {
            let job = self.get(job_id)?;
            if job.status.is_final() || timeout.is_some_and(|t| started.elapsed() >= t) {
                return Ok(job);
            }
            on_progress(&job);
            std::thread::sleep(WAIT_POLL);
        }
    }
}

/// The event log: every state change of media and jobs, with a monotonic `event_id`.
pub struct Events<'a> {
    engine: &'a Engine,
}

impl<'a> Events<'a> {
    pub(super) fn new(engine: &'a Engine) -> Self {
        Events { engine }
    }

    /// Events after `event_id` (0: from the start), oldest first, at most `limit` (1 to
    /// 1000).
    pub fn since(&self, event_id: u64, limit: usize) -> Result<Vec<Event>> {
        if limit == 0 || limit > MAX_EVENTS {
            return Err(Error::invalid("limit", format!("must be between 1 and {MAX_EVENTS}, got {limit}")));
        }
        self.engine.stores().events.events_since(event_id, limit)
    }
}
