//! The Cycles view: gctrace's columns per cycle, and one cycle's detail.

use ratatui::{
    layout::{Constraint, Rect},
    style::{Color, Style},
    text::{Line, Span},
    widgets::{Block, Borders, Clear, Paragraph, Row, Table, TableState, Wrap},
    Frame,
};

use super::super::app::App;
use super::super::data::Data;
use super::super::fmt::{bytes, dur, mib, ms};
use super::*;
use crate::model::records::GcRecord;

fn trigger_name(g: &GcRecord) -> &'static str {
    g.trigger.map_or("?", |t| t.as_str())
}

fn heap_triple(g: &GcRecord) -> String {
    let o = |v: Option<u64>| v.map_or("?".to_string(), mib);
    format!(
        "{}->{}->{}",
        o(g.heap_start_bytes),
        o(g.heap_end_bytes),
        o(g.heap_live_bytes)
    )
}

pub(super) fn draw_cycles(app: &App, f: &mut Frame, area: Rect) {
    let d = app.shown();
    if d.gcs.is_empty() {
        f.render_widget(Paragraph::new(label(" no GC cycle completed yet")), area);
        return;
    }
    let header = Row::new([
        "cycle",
        "t",
        "trigger",
        "clock ms st+mark+mt",
        "heap MiB",
        "goal",
        "pause",
        "CPU",
    ])
    .style(Style::new().fg(Color::DarkGray).bold());
    let slo = app.config.slo_pause_ns;
    let rows = d.gcs.iter().rev().map(|g| {
        let pause_style = if g.pause_ns > slo {
            Style::new().fg(Color::Red)
        } else {
            Style::new()
        };
        Row::new(vec![
            Line::from(g.cycle.to_string()),
            Line::from(rel(d, g.start_ns)),
            Line::from(trigger_name(g)),
            Line::from(format!(
                "{}+{}+{}",
                ms(g.sweep_term_ns),
                ms(g.mark_ns),
                ms(g.mark_term_ns)
            )),
            Line::from(heap_triple(g)),
            Line::from(g.heap_goal_bytes.map_or("?".to_string(), mib)),
            Line::from(Span::styled(dur(g.pause_ns), pause_style)),
            Line::from(g.cpu_percent.map_or("?".to_string(), |c| format!("{c}%"))),
        ])
    });
    let table = Table::new(
        rows,
        [
            Constraint::Length(6),
            Constraint::Length(8),
            Constraint::Length(7),
            Constraint::Length(19),
            Constraint::Length(15),
            Constraint::Length(5),
            Constraint::Length(7),
            Constraint::Length(4),
        ],
    )
    .header(header)
    .row_highlight_style(Style::new().reversed())
    .block(Block::new().title(label(format!(
        " {} cycles since attach, newest first; Enter: details",
        d.cycles
    ))));
    let sel = app.ui.cycle_sel.min(d.gcs.len() - 1);
    let mut state = TableState::default().with_selected(Some(sel));
    f.render_stateful_widget(table, area, &mut state);
    if let Some(n) = app.ui.cycle_detail {
        if let Some(g) = d.gcs.iter().rev().find(|g| g.cycle == n) {
            draw_cycle_detail(app, d, g, f, area);
        }
    }
}

fn draw_cycle_detail(app: &App, d: &Data, g: &GcRecord, f: &mut Frame, area: Rect) {
    let popup = centered(area, 76, 13);
    let cpu = |v: Option<u64>| v.map_or("?".to_string(), ms);
    let c = g.cpu;
    let o = |v: Option<u64>| v.map_or("?".to_string(), bytes);
    let mut stops: Vec<String> = d
        .stws
        .iter()
        .rev()
        .filter(|s| s.cycle == Some(g.cycle))
        .take(4)
        .map(|s| format!("{} {}", s.reason.as_str(), dur(s.duration_ns)))
        .collect();
    stops.reverse();
    let gogc = match g.gogc {
        Some(v) if v < 0 => "off".to_string(),
        Some(v) => v.to_string(),
        None => "?".to_string(),
    };
    let limit = match g.memory_limit_bytes {
        Some(i64::MAX) => "off".to_string(),
        Some(v) => bytes(v.max(0) as u64),
        None => "?".to_string(),
    };
    let slo = app.config.slo_pause_ns;
    let lines = vec![
        Line::from(vec![
            value(format!("cycle {}", g.cycle)),
            Span::raw(format!(
                "  trigger {}  started {} after attach",
                trigger_name(g),
                rel(d, g.start_ns)
            )),
        ]),
        Line::from(label("                   clock ms    cpu ms")),
        Line::from(format!(
            "sweep termination {:>8}  {:>8}",
            ms(g.sweep_term_ns),
            cpu(c.map(|c| c.sweep_term_ns))
        )),
        Line::from(format!(
            "mark              {:>8}  {:>8} assist, {} background, {} idle",
            ms(g.mark_ns),
            cpu(c.map(|c| c.assist_ns)),
            cpu(c.map(|c| c.background_ns)),
            cpu(c.map(|c| c.idle_ns))
        )),
        Line::from(format!(
            "mark termination  {:>8}  {:>8}",
            ms(g.mark_term_ns),
            cpu(c.map(|c| c.mark_term_ns))
        )),
        Line::from(vec![
            Span::raw("pause "),
            Span::styled(
                dur(g.pause_ns),
                if g.pause_ns > slo {
                    Style::new().fg(Color::Red).bold()
                } else {
                    Style::new().bold()
                },
            ),
            label(format!(": {}", stops.join(", "))),
        ]),
        Line::from(format!(
            "heap {} start -> {} mark term -> {} live; goal {}",
            o(g.heap_start_bytes),
            o(g.heap_end_bytes),
            o(g.heap_live_bytes),
            o(g.heap_goal_bytes)
        )),
        Line::from(format!(
            "stacks {}  globals {}  GOGC {gogc}  GOMEMLIMIT {limit}  GOMAXPROCS {}",
            o(g.stacks_bytes),
            o(g.globals_bytes),
            g.gomaxprocs.map_or("?".to_string(), |p| p.to_string()),
        )),
        Line::from(format!(
            "GC CPU since the program started {}",
            g.cpu_percent.map_or("?".to_string(), |c| format!("{c}%"))
        )),
        Line::from(label("Enter or Esc closes")),
    ];
    f.render_widget(Clear, popup);
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::new().borders(Borders::ALL).title(" Cycle detail ")),
        popup,
    );
}
