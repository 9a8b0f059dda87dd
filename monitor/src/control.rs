//! The operator's handle on a running monitor: a Unix socket,
//! `/run/monitor/<iface>.sock` (mode 0600, so root only), through which
//! `monitor bans list` and `monitor bans unban ADDR` talk to the polling loop.
//!
//! Why a socket and not maps pinned under /sys/fs/bpf: the policy, not the kernel map,
//! knows why and until when a source is banned, and an unban must reach it at once
//! (reported as an `unban` event, and the source's confirm count restarted so the ban
//! is not placed again in the next interval). Through a pinned map the monitor would
//! have to notice entries vanishing behind its back, bpffs is not mounted everywhere
//! (containers), and a pin outlives a killed monitor. The socket goes with the
//! process.
//!
//! Protocol: one request line (`list`, `unban ADDR`), answered by JSON lines, then
//! the connection is closed.
//!
//! Unix only: mitigation needs the XDP backend, so Linux. Elsewhere the socket does
//! not exist, and `monitor bans` says so in one line.

#[cfg(unix)]
use std::time::Duration;
#[cfg(unix)]
use std::{
    io::{BufRead as _, BufReader, Write as _},
    os::unix::{fs::PermissionsExt as _, net::UnixStream},
};
use std::{
    net::IpAddr,
    path::{Path, PathBuf},
};

#[cfg(unix)]
use anyhow::Context as _;
use anyhow::{Result, bail};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
#[cfg(unix)]
use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _},
    net::UnixListener,
};

/// Why there is no control socket off Unix.
#[cfg(not(unix))]
const NO_SOCKET: &str = "mitigation and `monitor bans` need Linux (the xdp backend drops the \
     packets, and the monitor answers `monitor bans` on a Unix socket); this system has \
     neither";

use crate::model::ban::Ban;

/// Where the sockets live.
pub const CONTROL_DIR: &str = "/run/monitor";

pub fn socket_path(iface: &str) -> PathBuf {
    Path::new(CONTROL_DIR).join(format!("{iface}.sock"))
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    List,
    Unban(IpAddr),
}

// Off Unix nothing parses or sends a request (there is no socket), but the protocol
// stays checked by the tests.
#[cfg_attr(not(unix), allow(dead_code))]
impl Request {
    fn parse(line: &str) -> Result<Self, String> {
        let mut words = line.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some("list"), None, _) => Ok(Self::List),
            (Some("unban"), Some(addr), None) => addr
                .parse()
                .map(Self::Unban)
                .map_err(|_| format!("`{addr}` is not an IP address")),
            _ => Err(format!(
                "unknown request `{line}`: expected list or unban ADDR"
            )),
        }
    }

    fn line(&self) -> String {
        match self {
            Self::List => "list".into(),
            Self::Unban(ip) => format!("unban {ip}"),
        }
    }
}

/// A request from the socket, with where its answer (JSON lines) goes.
#[derive(Debug)]
pub struct ControlRequest {
    pub request: Request,
    pub reply: oneshot::Sender<String>,
}

/// The listening socket; the file is removed when this is dropped.
pub struct ControlSocket {
    path: PathBuf,
    requests: mpsc::Receiver<ControlRequest>,
    /// The accept loop, until the run takes it to end it at shutdown.
    accept: Option<tokio::task::JoinHandle<()>>,
}

impl ControlSocket {
    #[cfg(not(unix))]
    pub fn listen(_iface: &str) -> Result<Self> {
        bail!(NO_SOCKET)
    }

    /// Listens on `socket_path(iface)`. A socket file nobody answers on is a killed
    /// monitor's and is replaced; one that answers belongs to a running monitor.
    #[cfg(unix)]
    pub fn listen(iface: &str) -> Result<Self> {
        let path = socket_path(iface);
        std::fs::create_dir_all(CONTROL_DIR)
            .with_context(|| format!("failed to create {CONTROL_DIR}"))?;
        if path.exists() {
            if UnixStream::connect(&path).is_ok() {
                bail!(
                    "{} is in use: another monitor is mitigating on `{iface}`",
                    path.display()
                );
            }
            std::fs::remove_file(&path)
                .with_context(|| format!("failed to remove the stale {}", path.display()))?;
        }
        let listener = UnixListener::bind(&path)
            .with_context(|| format!("failed to listen on {}", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("failed to restrict {}", path.display()))?;
        let (sender, requests) = mpsc::channel(16);
        // The connections' tasks belong to the accept task: ending it ends them.
        let accept = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else {
                            return;
                        };
                        let sender = sender.clone();
                        connections.spawn(async move {
                            if let Err(err) = serve(stream, sender).await {
                                log::debug!("control connection: {err:#}");
                            }
                        });
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        Ok(Self {
            path,
            requests,
            accept: Some(accept),
        })
    }

    /// The accept loop's task, for the run to cancel and await at shutdown; dropping
    /// the socket without taking it cancels it.
    pub fn take_task(&mut self) -> Option<tokio::task::JoinHandle<()>> {
        self.accept.take()
    }

    /// The next request; pending forever once the accept task is gone.
    pub async fn next(&mut self) -> ControlRequest {
        match self.requests.recv().await {
            Some(request) => request,
            None => std::future::pending().await,
        }
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        if let Some(accept) = &self.accept {
            accept.abort();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// How long a client may take to send its line, and the loop to answer it.
#[cfg(unix)]
const CONTROL_TIMEOUT: Duration = Duration::from_secs(5);

#[cfg(unix)]
async fn serve(stream: tokio::net::UnixStream, sender: mpsc::Sender<ControlRequest>) -> Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    tokio::time::timeout(
        CONTROL_TIMEOUT,
        tokio::io::BufReader::new(read).read_line(&mut line),
    )
    .await
    .context("no request line")??;
    let answer = match Request::parse(line.trim()) {
        Ok(request) => {
            let (reply, answer) = oneshot::channel();
            sender
                .send(ControlRequest { request, reply })
                .await
                .context("the monitor is stopping")?;
            tokio::time::timeout(CONTROL_TIMEOUT, answer)
                .await
                .context("the monitor did not answer")??
        }
        Err(error) => error_line(&error),
    };
    write.write_all(answer.as_bytes()).await?;
    write.shutdown().await?;
    Ok(())
}

/// One ban as `monitor bans list` shows it.
#[derive(Debug, Serialize)]
struct BanLine {
    address: IpAddr,
    reason: &'static str,
    since: String,
    until: String,
    dry_run: bool,
}

/// The answer to `list`: one JSON line per ban.
#[expect(
    single_use_lifetimes,
    reason = "`'_` is not allowed in an `impl Trait` argument yet"
)]
pub fn list_answer<'a>(bans: impl Iterator<Item = &'a Ban>) -> String {
    bans.map(|ban| {
        let line = BanLine {
            address: ban.address,
            reason: ban.reason.as_str(),
            since: humantime::format_rfc3339_seconds(ban.since).to_string(),
            until: humantime::format_rfc3339_seconds(ban.until).to_string(),
            dry_run: ban.dry_run,
        };
        serde_json::to_string(&line).unwrap_or_default() + "\n"
    })
    .collect()
}

/// The answer to `unban`.
pub fn unban_answer(address: IpAddr, unbanned: bool) -> String {
    if unbanned {
        serde_json::json!({ "unbanned": address }).to_string() + "\n"
    } else {
        error_line(&format!("{address} is not banned"))
    }
}

fn error_line(error: &str) -> String {
    serde_json::json!({ "error": error }).to_string() + "\n"
}

/// Client side, off Unix: there is no monitor to ask.
#[cfg(not(unix))]
pub fn send(_iface: &str, _request: &Request) -> Result<Vec<serde_json::Value>> {
    bail!(NO_SOCKET)
}

/// Client side: sends `request` to the monitor on `iface` and returns its JSON lines.
#[cfg(unix)]
pub fn send(iface: &str, request: &Request) -> Result<Vec<serde_json::Value>> {
    let path = socket_path(iface);
    let mut stream = UnixStream::connect(&path).with_context(|| {
        format!(
            "no monitor with mitigation on `{iface}` answers on {} (is it running with --mitigate?)",
            path.display()
        )
    })?;
    stream.set_read_timeout(Some(CONTROL_TIMEOUT * 2))?;
    stream.write_all(format!("{}\n", request.line()).as_bytes())?;
    let mut lines = Vec::new();
    for line in BufReader::new(stream).lines() {
        let line = line.context("failed to read the monitor's answer")?;
        let value: serde_json::Value = serde_json::from_str(&line)
            .with_context(|| format!("the monitor answered `{line}`"))?;
        if let Some(error) = value.get("error").and_then(|e| e.as_str()) {
            bail!("{error}");
        }
        lines.push(value);
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_and_print_back() {
        for request in [
            Request::List,
            Request::Unban("2001:db8::1".parse().unwrap()),
        ] {
            assert_eq!(Request::parse(&request.line()), Ok(request));
        }
        assert!(Request::parse("unban nope").unwrap_err().contains("`nope`"));
        assert!(Request::parse("ban 1.2.3.4").is_err());
        assert!(Request::parse("list extra").is_err());
    }
}
