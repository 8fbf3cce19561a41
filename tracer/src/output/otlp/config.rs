//! Where and how to export: `--otlp`, `--otlp-protocol` and the OTel environment
//! variables, resolved once at start-up (a bad value is a one-line usage error).

use std::time::Duration;

use super::transport;

/// The wire protocol (`--otlp-protocol`, `OTEL_EXPORTER_OTLP_PROTOCOL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    /// OTLP/gRPC (the Collector's port 4317).
    Grpc,
    /// OTLP/HTTP with protobuf bodies (the Collector's port 4318).
    #[value(name = "http/protobuf", alias = "http")]
    HttpProtobuf,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::HttpProtobuf => "http/protobuf",
        }
    }
}

/// Where and how to export, resolved from the flags and the OTel environment variables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// `http://HOST:PORT[/PATH]`; for HTTP, `/v1/metrics` and `/v1/traces` go after it.
    pub endpoint: String,
    pub protocol: Protocol,
    pub metric_interval: Duration,
    pub span_delay: Duration,
    pub timeout: Duration,
}

impl Config {
    /// `endpoint` is `--otlp`'s value (empty: `OTEL_EXPORTER_OTLP_ENDPOINT`, else
    /// `http://localhost:4317`); `protocol` is `--otlp-protocol`, else
    /// `OTEL_EXPORTER_OTLP_PROTOCOL`, else the port's: 4318 is http/protobuf, any other
    /// gRPC. `env` reads the environment (a parameter for the tests).
    pub fn resolve(
        endpoint: &str,
        protocol: Option<Protocol>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, String> {
        let from_env = env("OTEL_EXPORTER_OTLP_ENDPOINT").filter(|s| !s.trim().is_empty());
        let raw = match endpoint.trim() {
            "" => from_env.unwrap_or_else(|| "http://localhost:4317".to_owned()),
            e => e.to_owned(),
        };
        let endpoint = if raw.contains("://") {
            raw.clone()
        } else {
            format!("http://{raw}")
        };
        let bad = |why: &str| format!("'{raw}' is not an OTLP endpoint: {why}");
        let uri: tonic::codegen::http::Uri = endpoint
            .parse()
            .map_err(|e| bad(&format!("{e} (expected http://HOST:PORT)")))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(bad(
                    "https needs TLS, which this build does not include (use http:// to a \
                     local Collector)",
                ))
            }
            _ => return Err(bad("the scheme must be http://")),
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(bad("no host"));
        }
        let protocol = match protocol {
            Some(p) => p,
            None => match env("OTEL_EXPORTER_OTLP_PROTOCOL").as_deref().map(str::trim) {
                Some("grpc") => Protocol::Grpc,
                Some("http/protobuf") => Protocol::HttpProtobuf,
                Some(other) if !other.is_empty() => {
                    return Err(format!(
                        "OTEL_EXPORTER_OTLP_PROTOCOL={other} is not supported (expected grpc or \
                         http/protobuf)"
                    ))
                }
                _ if uri.port_u16() == Some(4318) => Protocol::HttpProtobuf,
                _ => Protocol::Grpc,
            },
        };
        let ms = |name: &str, default: u64| -> Result<Duration, String> {
            match env(name).as_deref().map(str::trim) {
                None | Some("") => Ok(Duration::from_millis(default)),
                Some(v) => v
                    .parse::<u64>()
                    .ok()
                    .filter(|&n| n > 0)
                    .map(Duration::from_millis)
                    .ok_or_else(|| format!("{name}={v} is not a positive number of milliseconds")),
            }
        };
        Ok(Config {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            protocol,
            metric_interval: ms("OTEL_METRIC_EXPORT_INTERVAL", 60_000)?,
            span_delay: ms("OTEL_BSP_SCHEDULE_DELAY", 5_000)?,
            timeout: ms(
                "OTEL_EXPORTER_OTLP_TIMEOUT",
                transport::DEFAULT_TIMEOUT.as_millis() as u64,
            )?,
        })
    }
}
