//! Each traced process's metrics as OTLP data points: cumulative sums and histograms
//! since the process was first seen, gauges as last set, one `ResourceMetrics` per
//! process (its resource says which process it is).

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, number_data_point, AggregationTemporality, Gauge, Histogram, HistogramDataPoint,
    Metric, NumberDataPoint, Sum,
};

use super::names::{self, Kind, Name};
use super::{attr_str, DURATION_BOUNDS_S};
use crate::model::records::{AllocRecord, GcRecord, StwRecord};

/// A cumulative histogram of durations in seconds, with the Prometheus view's buckets.
#[derive(Clone, Debug, Default)]
pub(super) struct Durations {
    /// One count per bound, plus the overflow bucket.
    buckets: Vec<u64>,
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
}

impl Durations {
    pub(super) fn observe(&mut self, ns: u64) {
        let s = ns as f64 / 1e9;
        if self.buckets.is_empty() {
            self.buckets = vec![0; DURATION_BOUNDS_S.len() + 1];
            self.min = s;
            self.max = s;
        }
        let i = DURATION_BOUNDS_S.partition_point(|&b| b < s);
        self.buckets[i] += 1;
        self.count += 1;
        self.sum += s;
        self.min = self.min.min(s);
        self.max = self.max.max(s);
    }

    fn point(&self, attributes: Vec<KeyValue>, start: u64, now: u64) -> HistogramDataPoint {
        HistogramDataPoint {
            attributes,
            start_time_unix_nano: start,
            time_unix_nano: now,
            count: self.count,
            sum: Some(self.sum),
            bucket_counts: self.buckets.clone(),
            explicit_bounds: DURATION_BOUNDS_S.to_vec(),
            min: Some(self.min),
            max: Some(self.max),
            ..HistogramDataPoint::default()
        }
    }
}

/// A number point's value.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Value {
    Int(i64),
    Double(f64),
}

/// The metrics of one process. Keys of the maps are the one attribute a metric has
/// beside the resource (`trigger`, `reason`, `phase`, as the Prometheus labels).
#[derive(Debug, Default)]
pub(super) struct ProcessMetrics {
    numbers: BTreeMap<(&'static str, &'static str), Value>,
    histograms: BTreeMap<(&'static str, &'static str), Durations>,
}

/// The attribute key of each metric that has one.
fn attribute_key(name: &Name) -> &'static str {
    match name.otlp {
        n if n == names::CYCLES_TRACED.otlp => "trigger",
        n if n == names::PAUSES_GC.otlp || n == names::PAUSES_OTHER.otlp => "reason",
        n if n == names::PHASES.otlp || n == names::CPU.otlp => "phase",
        _ => "",
    }
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl ProcessMetrics {
    fn set(&mut self, name: &Name, attr: &'static str, v: Value) {
        self.numbers.insert((name.otlp, attr), v);
    }

    /// A count that mirrors an absolute one (the runtime's cycle number, its allocation
    /// counter): cumulative sums never go down, so a smaller value is ignored.
    fn raise(&mut self, name: &Name, to: u64) {
        let e = self.numbers.entry((name.otlp, "")).or_insert(Value::Int(0));
        if let Value::Int(now) = e {
            *now = (*now).max(clamp(to));
        }
    }

    fn add_int(&mut self, name: &Name, attr: &'static str, by: u64) {
        let e = self
            .numbers
            .entry((name.otlp, attr))
            .or_insert(Value::Int(0));
        if let Value::Int(now) = e {
            *now = now.saturating_add(clamp(by));
        }
    }

    fn add_secs(&mut self, name: &Name, attr: &'static str, ns: u64) {
        let e = self
            .numbers
            .entry((name.otlp, attr))
            .or_insert(Value::Double(0.0));
        if let Value::Double(now) = e {
            *now += ns as f64 / 1e9;
        }
    }

    fn observe(&mut self, name: &Name, attr: &'static str, ns: u64) {
        self.histograms
            .entry((name.otlp, attr))
            .or_default()
            .observe(ns);
    }

    pub(super) fn settings(
        &mut self,
        gogc: Option<i32>,
        memory_limit: Option<i64>,
        gomaxprocs: Option<u32>,
    ) {
        if let Some(n) = gomaxprocs {
            self.set(&names::GOMAXPROCS, "", Value::Int(i64::from(n)));
        }
        if let Some(g) = gogc {
            self.set(&names::GOGC, "", Value::Int(i64::from(g)));
        }
        if let Some(l) = memory_limit {
            self.set(&names::MEMORY_LIMIT, "", Value::Int(l));
        }
    }

    pub(super) fn gc(&mut self, g: &GcRecord) {
        self.raise(&names::CYCLES_TOTAL, u64::from(g.cycle));
        let trigger = g
            .trigger
            .map_or("unknown", crate::decode::events::Trigger::as_str);
        self.add_int(&names::CYCLES_TRACED, trigger, 1);
        self.observe(&names::CYCLE_PAUSE, "", g.pause_ns);
        for (phase, ns) in [
            ("sweep_termination", g.sweep_term_ns),
            ("mark", g.mark_ns),
            ("mark_termination", g.mark_term_ns),
        ] {
            self.observe(&names::PHASES, phase, ns);
        }
        for (name, v) in [
            (&names::HEAP_LIVE, g.heap_live_bytes),
            (&names::HEAP_START, g.heap_start_bytes),
            (&names::HEAP_END, g.heap_end_bytes),
            (&names::HEAP_GOAL, g.heap_goal_bytes),
            (&names::GOROUTINES, g.goroutines),
        ] {
            if let Some(v) = v {
                self.set(name, "", Value::Int(clamp(v)));
            }
        }
        self.settings(g.gogc, g.memory_limit_bytes, g.gomaxprocs);
        if let Some(pct) = g.cpu_percent {
            self.set(
                &names::CPU_FRACTION,
                "",
                Value::Double(f64::from(pct) / 100.0),
            );
        }
        if let Some(cpu) = g.cpu {
            for (phase, ns) in cpu.by_phase() {
                self.add_secs(&names::CPU, phase, ns);
            }
        }
    }

    pub(super) fn stw(&mut self, s: &StwRecord) {
        let name = if s.reason.is_gc() {
            &names::PAUSES_GC
        } else {
            &names::PAUSES_OTHER
        };
        self.observe(name, s.reason.as_str(), s.duration_ns);
    }

    pub(super) fn alloc(&mut self, a: &AllocRecord) {
        self.raise(&names::ALLOC_BYTES, a.total_bytes);
        if let Some(rate) = a.rate_bytes_per_s {
            self.set(&names::ALLOC_RATE, "", Value::Int(clamp(rate)));
        }
        if let Some(objects) = a.alloc_objects {
            self.raise(&names::ALLOC_OBJECTS, objects);
        }
    }

    pub(super) fn lost_events(&mut self, lost: u64) {
        self.raise(&names::LOST_EVENTS, lost);
    }

    /// Every metric that has a value, as OTLP metrics of points from `start` to `now`.
    pub(super) fn export(&self, start: u64, now: u64) -> Vec<Metric> {
        let mut out = Vec::new();
        for name in names::ALL {
            let key = attribute_key(name);
            let attrs = |a: &'static str| {
                if key.is_empty() {
                    Vec::new()
                } else {
                    vec![attr_str(key, a)]
                }
            };
            let data = match name.kind {
                Kind::Histogram => {
                    let points: Vec<HistogramDataPoint> = self
                        .histograms
                        .range((name.otlp, "")..)
                        .take_while(|((n, _), _)| *n == name.otlp)
                        .map(|((_, a), h)| h.point(attrs(a), start, now))
                        .collect();
                    (!points.is_empty()).then_some(Data::Histogram(Histogram {
                        data_points: points,
                        aggregation_temporality: AggregationTemporality::Cumulative as i32,
                    }))
                }
                Kind::Counter | Kind::Gauge => {
                    let points: Vec<NumberDataPoint> = self
                        .numbers
                        .range((name.otlp, "")..)
                        .take_while(|((n, _), _)| *n == name.otlp)
                        .map(|((_, a), v)| NumberDataPoint {
                            attributes: attrs(a),
                            start_time_unix_nano: if name.kind == Kind::Counter {
                                start
                            } else {
                                0
                            },
                            time_unix_nano: now,
                            value: Some(match *v {
                                Value::Int(i) => number_data_point::Value::AsInt(i),
                                Value::Double(d) => number_data_point::Value::AsDouble(d),
                            }),
                            ..NumberDataPoint::default()
                        })
                        .collect();
                    (!points.is_empty()).then_some(match name.kind {
                        Kind::Counter => Data::Sum(Sum {
                            data_points: points,
                            aggregation_temporality: AggregationTemporality::Cumulative as i32,
                            is_monotonic: true,
                        }),
                        _ => Data::Gauge(Gauge {
                            data_points: points,
                        }),
                    })
                }
            };
            if let Some(data) = data {
                out.push(Metric {
                    name: name.otlp.to_owned(),
                    description: name.description.to_owned(),
                    unit: name.unit.to_owned(),
                    data: Some(data),
                    ..Metric::default()
                });
            }
        }
        out
    }
}
