//! The HTTP endpoint: `GET /metrics` on the address of `--metrics`, served by hyper
//! (HTTP/1.1) on the monitor's tokio runtime. hyper is already in the tree (reqwest's
//! client is built on it); a scrape needs nothing more than one route.

use std::{convert::Infallible, net::SocketAddr};

use anyhow::{Context as _, Result};
use http_body_util::Full;
use hyper::{
    Method, Request, Response, StatusCode,
    body::{Bytes, Incoming},
    header::{ALLOW, CONTENT_TYPE},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::TokioIo;
use log::{debug, info};
use tokio::{net::TcpListener, task::JoinHandle};

use super::Metrics;

/// What prometheus-client's text encoder writes.
pub const CONTENT_TYPE_OPENMETRICS: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The running endpoint; dropping it stops the server.
pub struct MetricsServer {
    pub local_addr: SocketAddr,
    /// The server, until the run takes it to end it at shutdown.
    task: Option<JoinHandle<()>>,
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

impl MetricsServer {
    /// Binds `addr` now (so that a taken port stops the monitor before it attaches),
    /// then serves in the background.
    pub async fn bind(addr: SocketAddr, metrics: Metrics) -> Result<Self> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("failed to listen for metrics on {addr} (--metrics)"))?;
        let local_addr = listener.local_addr()?;
        info!("Prometheus metrics on http://{local_addr}/metrics");
        let task = tokio::spawn(serve(listener, metrics));
        Ok(Self {
            local_addr,
            task: Some(task),
        })
    }

    /// The serving task, for the run to cancel and await at shutdown; dropping the
    /// server without taking it cancels it.
    pub fn take_task(&mut self) -> Option<JoinHandle<()>> {
        self.task.take()
    }
}

/// Accepts and serves connections; the connections' tasks belong to this one, so
/// ending it (at shutdown) ends them too, keep-alive ones included.
async fn serve(listener: TcpListener, metrics: Metrics) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors and the like: try again shortly.
                debug!("metrics: accept failed: {err}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let metrics = metrics.clone();
        connections.spawn(async move {
            let service = service_fn(move |request| {
                let metrics = metrics.clone();
                async move { Ok::<_, Infallible>(respond(&request, &metrics)) }
            });
            if let Err(err) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                debug!("metrics: connection from {peer}: {err}");
            }
        });
    }
}

fn respond(request: &Request<Incoming>, metrics: &Metrics) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, content_type: &str, body: String| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        if let Ok(value) = content_type.parse() {
            response.headers_mut().insert(CONTENT_TYPE, value);
        }
        response
    };
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "only GET\n".into(),
        );
        response
            .headers_mut()
            .insert(ALLOW, hyper::header::HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match request.uri().path() {
        "/metrics" => reply(StatusCode::OK, CONTENT_TYPE_OPENMETRICS, metrics.render()),
        "/" => reply(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            "monitor: the metrics are at /metrics\n".into(),
        ),
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found; the metrics are at /metrics\n".into(),
        ),
    }
}
