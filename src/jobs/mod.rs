//! Long work as jobs: a persistent row per job (through [`JobStore`]), a pool of worker threads
//! inside the engine that claims and runs them, cooperative cancellation, and recovery of jobs
//! whose worker died.
//!
//! A worker holds a job under a lease that a supervisor thread renews every
//! [`HEARTBEAT`] while writing the job's progress and reading whether a cancel was asked for (by
//! this process or any other). A job whose lease runs out, or whose owner process is gone, goes
//! back to `pending` and is run again from its stored request.

mod cancel;
mod worker;

pub(crate) use cancel::{JobContext, StopReason};
pub(crate) use worker::{Runner, WorkerPool};

use std::time::Duration;

/// How often a running job's progress and lease are written and its cancel flag read.
pub(crate) const HEARTBEAT: Duration = Duration::from_millis(250);
/// How long a claimed job stays its worker's without a heartbeat.
pub(crate) const LEASE_MS: i64 = 10_000;

#[allow(unused_imports)]
use crate::store::JobStore;
