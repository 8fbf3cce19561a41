//! The Advice view: the rule engine's findings (what, evidence, remedy, the user's lines
//! of code), the goroutine count with its chart, and what GOGC 50, 200 and 400 (and
//! GOGC=off at the memory limit, when one is set) would do, predicted from the cycles
//! shown (docs/what-if.md). It only draws what the records said.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Sparkline, Wrap};
use ratatui::Frame;

use super::super::app::App;
use crate::model::records::{FindingRecord, Severity};
use crate::model::whatif;

pub(super) fn draw(app: &App, f: &mut Frame, area: Rect) {
    let what_if = what_if_lines(app);
    let height = u16::try_from(what_if.len() + 2).unwrap_or(u16::MAX);
    let [goroutines, predictions, findings] = Layout::vertical([
        Constraint::Length(4),
        Constraint::Length(height),
        Constraint::Min(3),
    ])
    .areas(area);
    draw_goroutines(app, f, goroutines);
    let block = Block::default()
        .borders(Borders::ALL)
        .title(" What if (predicted from these cycles; docs/what-if.md) ");
    f.render_widget(Paragraph::new(what_if).block(block), predictions);
    draw_findings(app, f, findings);
}

/// The default what-ifs over the cycles held: a line of basis, one per setting, and
/// the first note (why a figure is unknown) when there is one.
fn what_if_lines(app: &App) -> Vec<Line<'static>> {
    let d = app.shown();
    let gcs: Vec<&crate::model::records::GcRecord> = d.gcs.iter().collect();
    let go = d.process.as_ref().map_or("", |p| p.go_version.as_str());
    let inputs = whatif::Inputs::measure(&gcs, go);
    let mut lines = vec![Line::from(Span::styled(
        format!(" {}", whatif::text::basis(&inputs)),
        Style::new().dim(),
    ))];
    if inputs.cycles < whatif::inputs::MIN_PAIRS {
        return lines;
    }
    let preds = whatif::predict_all(&inputs, &whatif::default_settings(&inputs));
    for p in &preds {
        lines.push(Line::from(vec![
            Span::styled(
                format!(" {:<26}", whatif::text::label(p)),
                Style::new().bold(),
            ),
            Span::raw(whatif::text::figures(
                p.cycles_per_s,
                p.gc_cpu_percent,
                p.gc_cpu_total_percent,
                p.peak_heap_bytes,
            )),
            Span::styled(
                format!("  (goal set by {})", p.bound_by.unwrap_or("?")),
                Style::new().dim(),
            ),
        ]));
    }
    if let Some(note) = preds.iter().find_map(|p| p.warnings.first()) {
        lines.push(Line::from(Span::styled(
            format!(" note: {note}"),
            Style::new().fg(Color::Yellow),
        )));
    }
    lines
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
