//! `[metrics]`: the Prometheus endpoint (`monitor::metrics` serves it).

use serde::{Deserialize, Serialize};

/// The Prometheus endpoint (`monitor::metrics`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Address and port to serve `/metrics` on, e.g. 127.0.0.1:9850; none: no endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<std::net::SocketAddr>,
}
