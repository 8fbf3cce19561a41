//! The header (process, settings, attached time, losses), the tabs line with the run's state, and the alerts line.

use ratatui::{
    layout::Rect,
    style::{Color, Style},
    text::{Line, Span},
    widgets::Paragraph,
    Frame,
};

use super::super::app::{App, View};
use super::super::data::Ended;
use super::super::fmt::{bytes, secs};
use super::*;
use crate::output::tui::alerts::alerts;
use crate::probes::AllocMode;

pub(super) fn draw_header(app: &App, f: &mut Frame, area: Rect) {
    let d = app.shown();
    let mut l1 = vec![Span::styled(
        " gctrace-bpf ",
        Style::new().fg(Color::Black).bg(Color::Cyan).bold(),
    )];
    match &d.process {
        Some(p) => {
            l1.extend([label("  pid "), value(p.pid.to_string())]);
            if app.config.several {
                // Which of the processes this is, and how many are traced now.
                let procs = &app.procs;
                let at = procs.shown_index().map_or(0, |i| i + 1);
                l1.extend([
                    label("  "),
                    value(format!("{at} of {}", procs.order.len())),
                    label(format!(", {} traced (p)", procs.traced(&app.live))),
                ]);
            }
            l1.extend([
                label("  "),
                value(p.go_version.clone()),
                label("  "),
                Span::raw(p.exe.clone()),
            ]);
        }
        None if app.config.several => l1.push(label("  waiting for a process to trace…")),
        None => l1.push(label("  waiting for the target…")),
    }
    let (gogc, limit, procs) = d.current_settings();
    let gogc = match gogc {
        Some(v) if v < 0 => "off".to_string(),
        Some(v) => v.to_string(),
        None => "?".to_string(),
    };
    let limit = match limit {
        Some(i64::MAX) => "off".to_string(),
        Some(v) => bytes(v.max(0) as u64),
        None => "?".to_string(),
    };
    let procs = procs.map_or("?".to_string(), |p| p.to_string());
    let allocs = match app.config.allocs {
        AllocMode::Rate => "rate",
        AllocMode::Sample => "sample",
        AllocMode::Exact => "exact",
    };
    let lost_style = if d.lost > 0 {
        Style::new().fg(Color::Red).bold()
    } else {
        Style::new()
    };
    let l2 = vec![
        label(" GOGC "),
        value(gogc),
        label("  GOMEMLIMIT "),
        value(limit),
        label("  GOMAXPROCS "),
        value(procs),
        label("  attached "),
        value(secs(d.attached_s())),
        label("  allocs "),
        value(allocs.to_string()),
        label("  lost "),
        Span::styled(d.lost.to_string(), lost_style),
    ];
    f.render_widget(Paragraph::new(vec![Line::from(l1), Line::from(l2)]), area);
}

/// The run's state first (so a narrow terminal still shows an exit), then the views.
pub(super) fn draw_tabs(app: &App, f: &mut Frame, area: Rect) {
    let d = &app.live;
    let mut spans = vec![Span::raw(" ")];
    // One of several processes ended while the others are still traced.
    let others_go_on = app.config.several && !app.procs.over;
    spans.push(match (d.ended, app.frozen.is_some()) {
        (Some(Ended::TargetExited(code)), _) if others_go_on => Span::styled(
            match code {
                Some(code) => format!(" EXITED, status {code} "),
                None => " EXITED ".to_string(),
            },
            Style::new().fg(Color::White).bg(Color::Red).bold(),
        ),
        (Some(Ended::TargetExited(Some(code))), _) => Span::styled(
            format!(" TARGET EXITED, status {code}; q quits "),
            Style::new().fg(Color::White).bg(Color::Red).bold(),
        ),
        (Some(Ended::TargetExited(None)), _) => Span::styled(
            " TARGET EXITED; q quits ",
            Style::new().fg(Color::White).bg(Color::Red).bold(),
        ),
        (Some(Ended::Detached), _) => Span::styled(
            " DETACHED; q quits ",
            Style::new().fg(Color::Black).bg(Color::Yellow).bold(),
        ),
        (None, true) => Span::styled(
            " FROZEN (space resumes) ",
            Style::new().fg(Color::Black).bg(Color::Cyan).bold(),
        ),
        (None, false) => Span::styled(" ● LIVE ", Style::new().fg(Color::Green).bold()),
    });
    spans.push(Span::raw(" "));
    for (i, v) in View::ALL.iter().enumerate() {
        let text = format!(" {} {} ", i + 1, v.title());
        spans.push(if *v == app.ui.view {
            Span::styled(text, Style::new().reversed().bold())
        } else {
            Span::raw(text)
        });
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

pub(super) fn draw_alerts(app: &App, f: &mut Frame, area: Rect) {
    let list = alerts(app);
    let mut line = if list.is_empty() {
        Line::from(Span::styled(" ✓ no alerts", Style::new().fg(Color::Green)))
    } else {
        Line::from(Span::styled(
            format!(" ⚠ {}", list.join(" │ ")),
            Style::new().fg(Color::Red).bold(),
        ))
    };
    // Several processes: the latest news of them (picked up, exited, not traced).
    if let Some(notice) = app.procs.notice.as_ref().filter(|_| app.config.several) {
        line.push_span(label(" │ "));
        line.push_span(Span::styled(notice.clone(), Style::new().fg(Color::Cyan)));
    }
    f.render_widget(Paragraph::new(line), area);
}
