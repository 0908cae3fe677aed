//! Cooperative cancellation and progress of one running job.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::types::{JobProgress, JobStage};

/// Why a job was asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopReason {
    /// A caller cancelled it: it ends `cancelled`.
    Cancelled,
    /// The engine is shutting down: it goes back to `pending` to run again later.
    Shutdown,
}

/// What a running job sees: a stop flag to check between frames, windows and segments, and a
/// place to report progress. Cheap to clone; clones share state.
#[derive(Debug, Clone, Default)]
pub(crate) struct JobContext {
    stop: Arc<AtomicU8>,
    progress: Arc<Mutex<JobProgress>>,
}

const RUNNING: u8 = 0;
const CANCELLED: u8 = 1;
const SHUTDOWN: u8 = 2;

impl JobContext {
    /// A context nobody will stop (for work run outside a job).
    pub fn detached() -> Self {
        JobContext::default()
    }

    pub fn cancel(&self) {
        let _ = self.stop.compare_exchange(RUNNING, CANCELLED, Ordering::SeqCst, Ordering::SeqCst);
    }

    pub fn shutdown(&self) {
        let _ = self.stop.compare_exchange(RUNNING, SHUTDOWN, Ordering::SeqCst, Ordering::SeqCst);
    }

    pub fn stop_reason(&self) -> Option<StopReason> {
        match self.stop.load(Ordering::SeqCst) {
            CANCELLED => Some(StopReason::Cancelled),
            SHUTDOWN => Some(StopReason::Shutdown),
            _ => None,
        }
    }

    pub fn is_stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed) != RUNNING
    }

    /// `Err(Cancelled)` once a stop was asked for.
    pub fn check(&self) -> Result<()> {
        if self.is_stopped() {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    }

    pub fn progress(&self, stage: JobStage, fraction: f32) {
        *self.progress.lock().unwrap_or_else(|p| p.into_inner()) = JobProgress::new(stage, fraction);
    }

    pub fn current_progress(&self) -> JobProgress {
        *self.progress.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_reason_to_stop_wins() {
        let ctx = JobContext::detached();
        assert!(ctx.check().is_ok());
        let clone = ctx.clone();
        clone.cancel();
        ctx.shutdown();
        assert_eq!(ctx.stop_reason(), Some(StopReason::Cancelled));
        assert!(matches!(ctx.check(), Err(Error::Cancelled)));
    }
}
