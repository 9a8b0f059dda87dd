//! What stops the monitor from outside: SIGINT and SIGTERM on Unix, Ctrl-C elsewhere.

use anyhow::Result;

/// SIGINT and SIGTERM on Unix; Ctrl-C elsewhere (Windows).
pub(super) struct StopSignals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl StopSignals {
    #[cfg(unix)]
    pub(super) fn watch() -> Result<Self> {
        use anyhow::Context as _;
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            interrupt: signal(SignalKind::interrupt()).context("failed to watch SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("failed to watch SIGTERM")?,
        })
    }

    #[cfg(not(unix))]
    pub fn watch() -> Result<Self> {
        Ok(Self {})
    }

    #[cfg(unix)]
    pub(super) async fn received(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }

    #[cfg(not(unix))]
    pub async fn received(&mut self) {
        let _ = tokio::signal::ctrl_c().await;
    }
}
