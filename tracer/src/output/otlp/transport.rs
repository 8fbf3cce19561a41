//! Sending OTLP requests: gRPC through tonic's generated clients, or protobuf over plain
//! HTTP POST (`/v1/metrics`, `/v1/traces`). Runs on the exporter's own thread, which
//! owns a small tokio runtime for tonic, so the session's event loop never waits on a
//! Collector.

use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    metrics_service_client::MetricsServiceClient, ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    trace_service_client::TraceServiceClient, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use tonic::transport::{Channel, Endpoint};

use super::{Config, Protocol};

/// What the receiver refused of a request it otherwise took (OTLP's partial success).
pub(super) type Rejected = u64;

/// The gRPC clients and the runtime they run on.
pub(super) struct Grpc {
    runtime: tokio::runtime::Runtime,
    metrics: MetricsServiceClient<Channel>,
    traces: TraceServiceClient<Channel>,
}

pub(super) enum Transport {
    Grpc(Box<Grpc>),
    Http {
        agent: ureq::Agent,
        metrics_url: String,
        traces_url: String,
    },
}

impl Transport {
    /// Connections are made lazily: a Collector that is not up yet is an export failure
    /// later (counted and reported), not a reason to refuse to trace.
    pub(super) fn new(config: &Config) -> Result<Transport> {
        match config.protocol {
            Protocol::Grpc => {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .context("cannot start the OTLP exporter's runtime")?;
                let endpoint = Endpoint::from_shared(config.endpoint.clone())
                    .map_err(|e| anyhow!("bad OTLP endpoint {}: {e}", config.endpoint))?
                    .timeout(config.timeout)
                    .connect_timeout(config.timeout);
                let channel = {
                    let _in_runtime = runtime.enter();
                    endpoint.connect_lazy()
                };
                Ok(Transport::Grpc(Box::new(Grpc {
                    runtime,
                    metrics: MetricsServiceClient::new(channel.clone()),
                    traces: TraceServiceClient::new(channel),
                })))
            }
            Protocol::HttpProtobuf => {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .timeout_global(Some(config.timeout))
                    .build()
                    .into();
                let base = config.endpoint.trim_end_matches('/');
                Ok(Transport::Http {
                    agent,
                    metrics_url: format!("{base}/v1/metrics"),
                    traces_url: format!("{base}/v1/traces"),
                })
            }
        }
    }

    pub(super) fn metrics(&mut self, req: ExportMetricsServiceRequest) -> Result<Rejected> {
        let resp: ExportMetricsServiceResponse = match self {
            Transport::Grpc(g) => g
                .runtime
                .block_on(g.metrics.export(req))
                .map_err(|s| anyhow!("gRPC {:?}: {}", s.code(), s.message()))?
                .into_inner(),
            Transport::Http {
                agent, metrics_url, ..
            } => post(agent, metrics_url, req.encode_to_vec())?,
        };
        Ok(resp
            .partial_success
            .map_or(0, |p| u64::try_from(p.rejected_data_points).unwrap_or(0)))
    }

    pub(super) fn traces(&mut self, req: ExportTraceServiceRequest) -> Result<Rejected> {
        let resp: ExportTraceServiceResponse = match self {
            Transport::Grpc(g) => g
                .runtime
                .block_on(g.traces.export(req))
                .map_err(|s| anyhow!("gRPC {:?}: {}", s.code(), s.message()))?
                .into_inner(),
            Transport::Http {
                agent, traces_url, ..
            } => post(agent, traces_url, req.encode_to_vec())?,
        };
        Ok(resp
            .partial_success
            .map_or(0, |p| u64::try_from(p.rejected_spans).unwrap_or(0)))
    }
}

/// One OTLP/HTTP request: protobuf in, protobuf (or nothing) out.
fn post<R: Message + Default>(agent: &ureq::Agent, url: &str, body: Vec<u8>) -> Result<R> {
    let mut resp = agent
        .post(url)
        .header("Content-Type", "application/x-protobuf")
        .send(&body[..])
        .map_err(|e| anyhow!("POST {url}: {e}"))?;
    let bytes = resp
        .body_mut()
        .with_config()
        .limit(1 << 20)
        .read_to_vec()
        .map_err(|e| anyhow!("POST {url}: reading the response: {e}"))?;
    R::decode(&bytes[..]).map_err(|e| anyhow!("POST {url}: response is not OTLP protobuf: {e}"))
}

/// How long the exporter waits for one request.
pub(super) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
