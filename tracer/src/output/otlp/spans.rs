//! GC cycles and stops of the world as OTLP spans, timed by the records' own clock.
//!
//! A cycle is one span (`GC cycle`) from the start of its sweep-termination stop to the
//! end of its mark termination, with an event where each phase starts; each stop of the
//! world is a span of its own (`stop the world`), a child of its cycle's span when it
//! belongs to one. Ids are derived from the pid, the cycle number and the exporter's
//! start, so a stop and its cycle share a trace although the stop's record comes first.

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::{span, Span};

use super::{attr_int, attr_str};
use crate::model::records::{GcRecord, StwRecord};

/// Makes span and trace ids for one run of the exporter.
#[derive(Clone, Copy, Debug)]
pub(super) struct Ids {
    salt: u64,
}

/// splitmix64: spreads ids over the whole space (a Collector samples by trace id).
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Ids must not be all zeros (invalid in OTLP).
fn nonzero(v: u64) -> u64 {
    if v == 0 {
        1
    } else {
        v
    }
}

impl Ids {
    pub(super) fn new(salt: u64) -> Ids {
        Ids { salt: mix(salt) }
    }

    fn trace(&self, pid: u32, key: u64) -> Vec<u8> {
        let hi = nonzero(mix(self.salt ^ u64::from(pid)));
        let lo = mix(hi ^ key);
        [hi.to_be_bytes(), lo.to_be_bytes()].concat()
    }

    fn span(&self, pid: u32, key: u64, kind: u64) -> Vec<u8> {
        nonzero(mix(mix(self.salt ^ (u64::from(pid) << 32) ^ kind) ^ key))
            .to_be_bytes()
            .to_vec()
    }

    /// The trace and span of cycle `cycle` of `pid`.
    fn cycle(&self, pid: u32, cycle: u32) -> (Vec<u8>, Vec<u8>) {
        (
            self.trace(pid, u64::from(cycle)),
            self.span(pid, u64::from(cycle), 1),
        )
    }
}

/// Adds an optional figure: unknown is left out, never guessed.
fn push_opt(attrs: &mut Vec<KeyValue>, key: &str, v: Option<u64>) {
    if let Some(v) = v {
        attrs.push(attr_int(key, i64::try_from(v).unwrap_or(i64::MAX)));
    }
}

fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The span of one GC cycle; `unix` turns the records' monotonic ns into Unix ns.
pub(super) fn cycle(ids: &Ids, pid: u32, g: &GcRecord, unix: impl Fn(u64) -> u64) -> Span {
    let (trace_id, span_id) = ids.cycle(pid, g.cycle);
    let mut attributes = vec![
        attr_int("go.gc.cycle", i64::from(g.cycle)),
        attr_str(
            "go.gc.trigger",
            g.trigger
                .map_or("unknown", crate::decode::events::Trigger::as_str),
        ),
        attr_int("go.gc.sweep_term_ns", int(g.sweep_term_ns)),
        attr_int("go.gc.mark_ns", int(g.mark_ns)),
        attr_int("go.gc.mark_term_ns", int(g.mark_term_ns)),
        attr_int("go.gc.pause_ns", int(g.pause_ns)),
    ];
    push_opt(
        &mut attributes,
        "go.gc.heap_start_bytes",
        g.heap_start_bytes,
    );
    push_opt(&mut attributes, "go.gc.heap_end_bytes", g.heap_end_bytes);
    push_opt(&mut attributes, "go.gc.heap_live_bytes", g.heap_live_bytes);
    push_opt(&mut attributes, "go.gc.heap_goal_bytes", g.heap_goal_bytes);
    push_opt(&mut attributes, "go.gc.stacks_bytes", g.stacks_bytes);
    push_opt(&mut attributes, "go.gc.globals_bytes", g.globals_bytes);
    push_opt(&mut attributes, "go.gc.goroutines", g.goroutines);
    push_opt(
        &mut attributes,
        "go.gc.gomaxprocs",
        g.gomaxprocs.map(u64::from),
    );
    push_opt(
        &mut attributes,
        "go.gc.cpu_percent",
        g.cpu_percent.map(u64::from),
    );
    if let Some(gogc) = g.gogc {
        attributes.push(attr_int("go.gc.gogc", i64::from(gogc)));
    }
    if let Some(cpu) = g.cpu {
        for (key, ns) in [
            ("go.gc.cpu.sweep_term_ns", cpu.sweep_term_ns),
            ("go.gc.cpu.assist_ns", cpu.assist_ns),
            ("go.gc.cpu.background_ns", cpu.background_ns),
            ("go.gc.cpu.idle_ns", cpu.idle_ns),
            ("go.gc.cpu.mark_term_ns", cpu.mark_term_ns),
        ] {
            attributes.push(attr_int(key, int(ns)));
        }
    }
    let mark = g.start_ns.saturating_add(g.sweep_term_ns);
    let mark_term = mark.saturating_add(g.mark_ns);
    let events = [
        ("sweep termination", g.start_ns),
        ("mark", mark),
        ("mark termination", mark_term),
    ]
    .into_iter()
    .map(|(name, at)| span::Event {
        time_unix_nano: unix(at),
        name: name.to_owned(),
        ..span::Event::default()
    })
    .collect();
    Span {
        trace_id,
        span_id,
        name: "GC cycle".to_owned(),
        kind: span::SpanKind::Internal as i32,
        start_time_unix_nano: unix(g.start_ns),
        end_time_unix_nano: unix(g.end_ns),
        attributes,
        events,
        ..Span::default()
    }
}

/// The span of one stop of the world.
pub(super) fn stop(ids: &Ids, pid: u32, s: &StwRecord, unix: impl Fn(u64) -> u64) -> Span {
    let (trace_id, parent_span_id) = match s.cycle {
        Some(c) => ids.cycle(pid, c),
        None => (ids.trace(pid, s.start_ns ^ (1 << 63)), Vec::new()),
    };
    let mut attributes = vec![
        attr_str("go.stw.reason", s.reason.as_str()),
        attr_int("go.stw.duration_ns", int(s.duration_ns)),
    ];
    if let Some(c) = s.cycle {
        attributes.push(attr_int("go.gc.cycle", i64::from(c)));
    }
    Span {
        trace_id,
        span_id: ids.span(pid, s.start_ns, 2),
        parent_span_id,
        name: "stop the world".to_owned(),
        kind: span::SpanKind::Internal as i32,
        start_time_unix_nano: unix(s.start_ns),
        end_time_unix_nano: unix(s.start_ns.saturating_add(s.duration_ns)),
        attributes,
        ..Span::default()
    }
}
