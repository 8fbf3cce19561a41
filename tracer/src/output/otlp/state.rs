//! What the sink has gathered and the exporter thread has not sent yet: each process's
//! resource and metrics, and the queue of spans, turned into OTLP requests on demand.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{metric, ResourceMetrics, ScopeMetrics};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

use super::metrics::ProcessMetrics;
use super::spans::{self, Ids};
use super::{attr_int, attr_str, MAX_QUEUED_SPANS, PROCESSES_PER_REQUEST, SPANS_PER_REQUEST};
use crate::model::records::{ProcessInfo, Record};

/// OTel's name for each cgroup label of [`crate::model::records::Labels::known`].
fn label_attribute(label: &str) -> &str {
    match label {
        "cgroup" => "process.linux.cgroup",
        "container_id" => "container.id",
        "container_runtime" => "container.runtime.name",
        "container_name" => "container.name",
        "pod_uid" => "k8s.pod.uid",
        "pod_name" => "k8s.pod.name",
        "pod_namespace" => "k8s.namespace.name",
        "systemd_unit" => "systemd.unit",
        other => other,
    }
}

/// The resource attributes of a traced process.
pub fn resource_attributes(pid: u32, p: Option<&ProcessInfo>) -> Vec<KeyValue> {
    let mut attrs = vec![attr_int("process.pid", i64::from(pid))];
    let Some(p) = p else {
        return attrs;
    };
    let name = p.exe.rsplit('/').next().unwrap_or(&p.exe);
    attrs.extend([
        attr_str("service.name", name),
        attr_str("process.executable.name", name),
        attr_str("process.executable.path", &p.exe),
        attr_str("process.runtime.name", "go"),
        attr_str("process.runtime.version", &p.go_version),
        attr_str(
            "host.arch",
            match p.arch.as_str() {
                "x86_64" => "amd64",
                "aarch64" => "arm64",
                other => other,
            },
        ),
    ]);
    attrs.extend(
        p.labels
            .known()
            .map(|(k, v)| attr_str(label_attribute(k), v)),
    );
    attrs
}

fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "gctrace-bpf".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        ..InstrumentationScope::default()
    }
}

/// One traced process, as the exporter knows it.
pub(super) struct Process {
    pub(super) resource: Vec<KeyValue>,
    /// Start of its cumulative sums (Unix ns).
    pub(super) start_unix_ns: u64,
    pub(super) metrics: ProcessMetrics,
}

/// What the sink has gathered and the exporter thread has not sent yet.
pub(super) struct State {
    pub(super) procs: BTreeMap<u32, Process>,
    /// Processes whose summary came: exported once more, then forgotten.
    pub(super) finished: Vec<Process>,
    pub(super) spans: Vec<(u32, Span)>,
    pub(super) ids: Ids,
    /// Unix ns minus CLOCK_MONOTONIC ns: the records' times are monotonic.
    pub(super) clock_offset: i128,
    /// Spans the queue had no room for.
    pub(super) dropped: u64,
}

impl State {
    pub(super) fn unix(&self, mono_ns: u64) -> u64 {
        u64::try_from(i128::from(mono_ns) + self.clock_offset).unwrap_or(0)
    }

    pub(super) fn process(&mut self, pid: u32) -> &mut Process {
        let start = self.unix(crate::clock::monotonic_ns());
        self.procs.entry(pid).or_insert_with(|| Process {
            resource: resource_attributes(pid, None),
            start_unix_ns: start,
            metrics: ProcessMetrics::default(),
        })
    }

    /// Queue a span; false when the queue is full (the caller counts it).
    pub(super) fn queue(&mut self, pid: u32, span: Span) -> bool {
        if self.spans.len() >= MAX_QUEUED_SPANS {
            return false;
        }
        self.spans.push((pid, span));
        true
    }

    pub(super) fn record(&mut self, pid: u32, rec: &Record) {
        let queued = match rec {
            Record::Process(p) => {
                let resource = resource_attributes(pid, Some(p));
                let proc = self.process(pid);
                proc.resource = resource;
                proc.metrics
                    .settings(p.gogc, p.memory_limit_bytes, p.gomaxprocs);
                true
            }
            Record::Settings(s) => {
                self.process(pid)
                    .metrics
                    .settings(s.gogc, s.memory_limit_bytes, s.gomaxprocs);
                true
            }
            Record::Gc(g) => {
                self.process(pid).metrics.gc(g);
                let span = spans::cycle(&self.ids, pid, g, |ns| self.unix(ns));
                self.queue(pid, span)
            }
            Record::Stw(s) => {
                self.process(pid).metrics.stw(s);
                let span = spans::stop(&self.ids, pid, s, |ns| self.unix(ns));
                self.queue(pid, span)
            }
            Record::Alloc(a) => {
                self.process(pid).metrics.alloc(a);
                true
            }
            Record::Summary(s) => {
                self.process(pid).metrics.lost_events(s.lost_events);
                if let Some(p) = self.procs.remove(&pid) {
                    self.finished.push(p);
                }
                true
            }
            Record::Finding(_) | Record::AllocTypes(_) | Record::AllocSites(_) => true,
        };
        if !queued {
            self.dropped += 1;
        }
    }

    /// The metrics of every process, as requests of at most [`PROCESSES_PER_REQUEST`];
    /// the finished processes are then forgotten.
    pub(super) fn take_metrics(&mut self) -> Vec<(ExportMetricsServiceRequest, u64)> {
        let now = self.unix(crate::clock::monotonic_ns());
        let finished = std::mem::take(&mut self.finished);
        let all: Vec<ResourceMetrics> = self
            .procs
            .values()
            .chain(finished.iter())
            .map(|p| ResourceMetrics {
                resource: Some(Resource {
                    attributes: p.resource.clone(),
                    ..Resource::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(scope()),
                    metrics: p.metrics.export(p.start_unix_ns, now),
                    ..ScopeMetrics::default()
                }],
                ..ResourceMetrics::default()
            })
            .collect();
        all.chunks(PROCESSES_PER_REQUEST)
            .map(|chunk| {
                let points = chunk.iter().map(points_in).sum();
                (
                    ExportMetricsServiceRequest {
                        resource_metrics: chunk.to_vec(),
                    },
                    points,
                )
            })
            .collect()
    }

    /// The queued spans, grouped by process, as requests of at most
    /// [`SPANS_PER_REQUEST`] spans.
    pub(super) fn take_spans(&mut self) -> Vec<(ExportTraceServiceRequest, u64)> {
        let queued = std::mem::take(&mut self.spans);
        let mut requests = Vec::new();
        for batch in queued.chunks(SPANS_PER_REQUEST) {
            let mut by_pid: BTreeMap<u32, Vec<Span>> = BTreeMap::new();
            for (pid, span) in batch {
                by_pid.entry(*pid).or_default().push(span.clone());
            }
            let resource_spans = by_pid
                .into_iter()
                .map(|(pid, spans)| ResourceSpans {
                    resource: Some(Resource {
                        attributes: self.resource_of(pid),
                        ..Resource::default()
                    }),
                    scope_spans: vec![ScopeSpans {
                        scope: Some(scope()),
                        spans,
                        ..ScopeSpans::default()
                    }],
                    ..ResourceSpans::default()
                })
                .collect();
            requests.push((
                ExportTraceServiceRequest { resource_spans },
                batch.len() as u64,
            ));
        }
        requests
    }

    pub(super) fn resource_of(&self, pid: u32) -> Vec<KeyValue> {
        match self.procs.get(&pid) {
            Some(p) => p.resource.clone(),
            None => self
                .finished
                .iter()
                .find(|p| p.resource.first() == Some(&attr_int("process.pid", i64::from(pid))))
                .map_or_else(|| resource_attributes(pid, None), |p| p.resource.clone()),
        }
    }
}

/// Data points in one process's metrics.
fn points_in(rm: &ResourceMetrics) -> u64 {
    rm.scope_metrics
        .iter()
        .flat_map(|s| &s.metrics)
        .map(|m| match &m.data {
            Some(metric::Data::Gauge(g)) => g.data_points.len(),
            Some(metric::Data::Sum(s)) => s.data_points.len(),
            Some(metric::Data::Histogram(h)) => h.data_points.len(),
            _ => 0,
        } as u64)
        .sum()
}
