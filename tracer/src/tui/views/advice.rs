//! The Advice view: the rule engine's findings (what, evidence, remedy, the user's lines
//! of code) and the goroutine count with its chart. It only draws what the records said.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Sparkline, Wrap};
use ratatui::Frame;

use super::super::app::App;
use crate::records::{FindingRecord, Severity};

pub(super) fn draw(app: &App, f: &mut Frame, area: Rect) {
    let [goroutines, findings] =
        Layout::vertical([Constraint::Length(4), Constraint::Min(3)]).areas(area);
    draw_goroutines(app, f, goroutines);
    draw_findings(app, f, findings);
}

fn severity_style(s: Severity) -> Style {
    match s {
        Severity::Critical => Style::new().fg(Color::Red).bold(),
        Severity::Warning => Style::new().fg(Color::Yellow).bold(),
        Severity::Info => Style::new().fg(Color::Cyan),
    }
}

fn finding_lines<'a>(f: &'a FindingRecord, lines: &mut Vec<Line<'a>>) {
    lines.push(Line::from(vec![
        Span::styled(
            format!(" {:<8} ", f.severity.as_str()),
            severity_style(f.severity),
        ),
        Span::styled(f.id.as_str(), Style::new().bold()),
        Span::raw(format!("  {}", f.summary)),
    ]));
    for s in &f.sites {
        let file = s.file.rsplit('/').take(2).collect::<Vec<_>>();
        let file = file.iter().rev().copied().collect::<Vec<_>>().join("/");
        lines.push(Line::from(Span::styled(
            format!("          at {file}:{} ({})", s.line, s.function),
            Style::new().fg(Color::Cyan),
        )));
    }
    lines.push(Line::from(Span::styled(
        format!("          → {}", f.remedy),
        Style::new().fg(Color::Green),
    )));
}

fn draw_findings(app: &App, f: &mut Frame, area: Rect) {
    let d = app.shown();
    let board = &d.findings;
    let mut lines: Vec<Line> = Vec::new();
    if board.active.is_empty() {
        lines.push(Line::from(Span::styled(
            " ✓ nothing to fix: every playbook target is met",
            Style::new().fg(Color::Green),
        )));
    }
    let mut active: Vec<&FindingRecord> = board.active.values().collect();
    active.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.id.cmp(&b.id)));
    for finding in active {
        finding_lines(finding, &mut lines);
    }
    if !board.past.is_empty() {
        lines.push(Line::from(""));
        lines.push(Line::from(Span::styled(" ended:", Style::new().dim())));
        let t0 = d.first_ns.unwrap_or(0);
        let at = |ns: u64| ns.saturating_sub(t0) as f64 / 1e9;
        for (started, end) in board.past.iter().rev() {
            lines.push(Line::from(Span::styled(
                format!(
                    "   {} {:.0}s–{:.0}s: {}",
                    started.id.as_str(),
                    at(started.ts_ns),
                    at(*end),
                    started.summary
                ),
                Style::new().dim(),
            )));
        }
    }
    let block = Block::default()
        .borders(Borders::ALL)
        .title(" Findings (docs/findings.md) ");
    f.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false }),
        area,
    );
}

fn draw_goroutines(app: &App, f: &mut Frame, area: Rect) {
    let d = app.shown();
    let start = d.window_start(app.window_s());
    let counts: Vec<u64> = d
        .gcs
        .iter()
        .filter(|g| g.end_ns >= start)
        .filter_map(|g| g.goroutines)
        .collect();
    let title = match counts.last() {
        Some(n) => format!(
            " goroutines {n} (NumGoroutine + dead ones cached on Ps), max {} in window ",
            counts.iter().max().copied().unwrap_or(0)
        ),
        None => " goroutines ? (not readable in this binary, or no cycle yet) ".to_string(),
    };
    let block = Block::default().borders(Borders::ALL).title(title);
    let inner_w = usize::from(area.width.saturating_sub(2));
    let shown = &counts[counts.len().saturating_sub(inner_w)..];
    f.render_widget(
        Sparkline::default()
            .block(block)
            .data(shown)
            .max(shown.iter().max().copied().unwrap_or(1).max(1))
            .style(Style::new().fg(Color::Blue)),
        area,
    );
}
