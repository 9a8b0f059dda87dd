//! Every background task the run owns (the backend's readers and threads, the control
//! socket's accept loop, the metrics server), ended together at shutdown under one
//! deadline, so none outlives the run unseen: a task that runs until told is cancelled;
//! one already told to stop (the backend's, through `Backend::shutdown`) is given until
//! the deadline to finish, then cancelled.

use std::time::Duration;

use log::debug;
use tokio::{task::JoinHandle, time::Instant};

/// How long the owned tasks get, together, to end.
pub(super) const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(1);

struct Owned {
    name: &'static str,
    handle: JoinHandle<()>,
    /// Cancelled at shutdown, rather than awaited until the deadline.
    cancel: bool,
}

#[derive(Default)]
pub(super) struct Tasks(Vec<Owned>);

impl Tasks {
    /// A task that runs until cancelled (a server, an accept loop).
    pub(super) fn own(&mut self, name: &'static str, handle: JoinHandle<()>) {
        self.0.push(Owned {
            name,
            handle,
            cancel: true,
        });
    }

    /// Tasks already told to stop: awaited at shutdown, cancelled at the deadline.
    pub(super) fn own_stopping(
        &mut self,
        name: &'static str,
        handles: impl IntoIterator<Item = JoinHandle<()>>,
    ) {
        for handle in handles {
            self.0.push(Owned {
                name,
                handle,
                cancel: false,
            });
        }
    }

    /// Cancels the tasks that run until told, then waits for every task until
    /// `deadline`; one still running then is cancelled, and named in the debug log.
    pub(super) async fn shutdown(mut self, deadline: Instant) {
        let tasks = std::mem::take(&mut self.0);
        for task in tasks.iter().filter(|t| t.cancel) {
            task.handle.abort();
        }
        for mut task in tasks {
            if tokio::time::timeout_at(deadline, &mut task.handle)
                .await
                .is_err()
            {
                task.handle.abort();
                debug!(
                    "{} had not stopped by the shutdown deadline; aborted",
                    task.name
                );
            }
        }
    }
}

/// A run that fails before its shutdown still cancels what it started.
impl Drop for Tasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.handle.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_task_is_ended_by_the_deadline() {
        let mut tasks = Tasks::default();
        let (server_tx, server_rx) = tokio::sync::oneshot::channel::<()>();
        tasks.own(
            "a task that never ends by itself",
            tokio::spawn(async move {
                let _guard = server_tx; // dropped when the task is cancelled
                std::future::pending::<()>().await;
            }),
        );
        let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
        tasks.own_stopping(
            "a task finishing its work",
            [tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let _ = stopping_tx.send(());
            })],
        );
        let (stuck_tx, stuck_rx) = tokio::sync::oneshot::channel::<()>();
        tasks.own_stopping(
            "a task that ignored its stop",
            [tokio::spawn(async move {
                let _guard = stuck_tx;
                std::future::pending::<()>().await;
            })],
        );
        let started = Instant::now();
        tasks.shutdown(started + Duration::from_millis(500)).await;
        assert!(server_rx.await.is_err(), "the server was cancelled");
        assert_eq!(
            stopping_rx.await,
            Ok(()),
            "the stopping task finished its work"
        );
        assert!(
            stuck_rx.await.is_err(),
            "the stuck task was cancelled at the deadline"
        );
        assert!(
            started.elapsed() >= Duration::from_millis(500),
            "it was given until the deadline"
        );
    }
}
