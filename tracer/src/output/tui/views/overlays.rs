//! Pop-ups drawn over a view: the help and the process picker.

use ratatui::{
    layout::{Constraint, Rect},
    style::{Color, Style},
    text::{Line, Span},
    widgets::{Block, Borders, Clear, Paragraph, Row, Table, TableState},
    Frame,
};

use super::super::app::App;
use super::super::data::Ended;
use super::super::fmt::dur;
use super::*;

pub(super) fn draw_help(app: &App, f: &mut Frame, area: Rect) {
    let popup = centered(area, 66, 15);
    let mut keys = vec![
        ("q, Ctrl-C", "quit (probes are removed; the target runs on)"),
        (
            "tab, 1-5",
            "views: overview, cycles, pauses, allocations, advice",
        ),
        ("↑ ↓ PgUp PgDn", "scroll the cycles or pauses table"),
        ("Home End", "newest / oldest"),
        ("Enter", "details of the selected cycle"),
        ("space", "freeze the display (tracing goes on)"),
        ("+ -", "widen / narrow the time window"),
        ("?", "this help"),
    ];
    if app.config.several {
        keys.insert(0, ("p, [ ]", "pick the process shown; previous, next"));
    }
    let mut lines: Vec<Line> = keys
        .iter()
        .map(|(k, what)| {
            Line::from(vec![
                Span::styled(format!(" {k:<14}"), Style::new().bold()),
                Span::raw(*what),
            ])
        })
        .collect();
    lines.push(Line::from(""));
    lines.push(Line::from(label(
        " Pause colours: cyan sweep termination, blue mark",
    )));
    lines.push(Line::from(label(
        " termination, yellow non-GC stops (reason shown).",
    )));
    f.render_widget(Clear, popup);
    f.render_widget(
        Paragraph::new(lines).block(Block::new().borders(Borders::ALL).title(" Help ")),
        popup,
    );
}

/// The process picker: every process of the run with its state and headline figures;
/// the shown one marked, the selected one highlighted.
pub(super) fn draw_picker(app: &App, at: usize, f: &mut Frame, area: Rect) {
    let procs = &app.procs;
    let height = (procs.order.len() as u16).saturating_add(3).max(4);
    let popup = centered(area, 78, height);
    let rows: Vec<Row> = procs
        .order
        .iter()
        .map(|&pid| {
            let d = procs.data(&app.live, pid);
            let info = d.and_then(|d| d.process.as_ref());
            let state = match d.and_then(|d| d.ended) {
                None => "traced".to_string(),
                Some(Ended::TargetExited(Some(code))) => format!("exited {code}"),
                Some(Ended::TargetExited(None)) => "exited".to_string(),
                Some(Ended::Detached) => "detached".to_string(),
            };
            let p99 = d
                .and_then(|d| d.total_percentiles())
                .map_or("-".to_string(), |p| dur(p[2]));
            Row::new(vec![
                if procs.shown == Some(pid) { "▶" } else { " " }.to_string(),
                pid.to_string(),
                state,
                info.map_or("?".to_string(), |p| p.go_version.clone()),
                d.map_or(0, |d| d.cycles).to_string(),
                p99,
                info.map_or(String::new(), |p| p.exe.clone()),
            ])
        })
        .collect();
    let table = Table::new(
        rows,
        [
            Constraint::Length(1),
            Constraint::Length(8),
            Constraint::Length(9),
            Constraint::Length(9),
            Constraint::Length(6),
            Constraint::Length(8),
            Constraint::Min(8),
        ],
    )
    .header(
        Row::new(["", "pid", "state", "Go", "cycles", "p99", "executable"])
            .style(Style::new().fg(Color::DarkGray).bold()),
    )
    .row_highlight_style(Style::new().reversed())
    .block(
        Block::new()
            .borders(Borders::ALL)
            .title(" Processes: ↑↓ select, Enter shows, Esc closes "),
    );
    let mut state = TableState::default().with_selected(Some(at));
    f.render_widget(Clear, popup);
    f.render_stateful_widget(table, popup, &mut state);
}
