//! Every background task the run owns (the backend's readers, the control socket's
//! accept loop, the metrics server), ended together at shutdown: each is cancelled,
//! then awaited, all under one deadline, so none outlives the run unseen.

use std::time::Duration;

use log::warn;
use tokio::{task::JoinHandle, time::Instant};

/// How long the owned tasks get, together, to end once cancelled.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(2);

#[derive(Default)]
pub struct Tasks(Vec<(&'static str, JoinHandle<()>)>);

impl Tasks {
    pub fn own(&mut self, name: &'static str, handle: JoinHandle<()>) {
        self.0.push((name, handle));
    }

    pub fn own_all(
        &mut self,
        name: &'static str,
        handles: impl IntoIterator<Item = JoinHandle<()>>,
    ) {
        for handle in handles {
            self.own(name, handle);
        }
    }

    /// Cancels every task, then waits for each to end until `deadline`; one that has not
    /// ended by then is named in a warning (it is dropped with the runtime).
    pub async fn shutdown(mut self, deadline: Instant) {
        let tasks = std::mem::take(&mut self.0);
        for (_, handle) in &tasks {
            handle.abort();
        }
        for (name, handle) in tasks {
            if tokio::time::timeout_at(deadline, handle).await.is_err() {
                warn!("{name} did not end within the shutdown deadline");
            }
        }
    }
}

/// A run that fails before its shutdown still cancels what it started.
impl Drop for Tasks {
    fn drop(&mut self) {
        for (_, handle) in &self.0 {
            handle.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_task_is_cancelled_and_awaited() {
        let mut tasks = Tasks::default();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tasks.own(
            "a task that never ends by itself",
            tokio::spawn(async move {
                let _guard = tx; // dropped when the task is cancelled
                std::future::pending::<()>().await;
            }),
        );
        tasks.shutdown(Instant::now() + SHUTDOWN_DEADLINE).await;
        assert!(rx.await.is_err(), "the task's state was dropped: it ended");
    }
}
