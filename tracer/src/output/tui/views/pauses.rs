//! The Pauses view: every stop with its reason, and the latency histogram since attach.

use ratatui::{
    layout::{Constraint, Layout, Rect},
    style::{Color, Style},
    text::{Line, Span},
    widgets::{Block, Borders, Paragraph, Row, Table},
    Frame,
};

use super::super::app::App;
use super::super::data::LATENCY_BARS_NS;
use super::super::fmt::dur;
use super::*;

pub(super) fn draw_pauses(app: &App, f: &mut Frame, area: Rect) {
    let d = app.shown();
    let [summary, rest] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(area);
    let non_gc: Vec<String> = d
        .reasons
        .iter()
        .filter(|(r, _)| !r.is_gc())
        .map(|(r, n)| format!("{} {n}", r.as_str()))
        .collect();
    f.render_widget(
        Paragraph::new(Line::from(vec![
            label(" since attach: GC stops "),
            value(d.gc_stops.to_string()),
            label(", non-GC stops "),
            Span::styled(
                d.non_gc_stops.to_string(),
                Style::new().fg(NON_GC_COLOR).bold(),
            ),
            label(if non_gc.is_empty() { "" } else { " (" }),
            Span::raw(non_gc.join(", ")),
            label(if non_gc.is_empty() { "" } else { ")" }),
        ])),
        summary,
    );
    let [table_area, hist_area] =
        Layout::horizontal([Constraint::Min(40), Constraint::Length(32)]).areas(rest);
    let slo = app.config.slo_pause_ns;
    let visible = usize::from(table_area.height.saturating_sub(2));
    let skip = app.ui.pause_scroll.min(d.stws.len().saturating_sub(1));
    let rows: Vec<Row> = d
        .stws
        .iter()
        .rev()
        .skip(skip)
        .take(visible)
        .map(|s| {
            let style = if s.duration_ns > slo {
                Style::new().fg(Color::Red)
            } else {
                Style::new()
            };
            Row::new(vec![
                Line::from(rel(d, s.start_ns)),
                Line::from(Span::styled(
                    s.reason.as_str(),
                    Style::new().fg(stop_color(s.reason)),
                )),
                Line::from(Span::styled(dur(s.duration_ns), style)),
                Line::from(s.cycle.map_or("-".to_string(), |c| c.to_string())),
            ])
        })
        .collect();
    let title = if d.stws.is_empty() {
        " no stop-the-world pause yet".to_string()
    } else {
        format!(
            " stops, newest first ({} of {} kept)",
            skip + 1,
            d.stws.len()
        )
    };
    let table = Table::new(
        rows,
        [
            Constraint::Length(7),
            Constraint::Min(20),
            Constraint::Length(8),
            Constraint::Length(5),
        ],
    )
    .header(
        Row::new(["t", "reason", "duration", "cycle"])
            .style(Style::new().fg(Color::DarkGray).bold()),
    )
    .block(Block::new().title(label(title)));
    f.render_widget(table, table_area);

    // Latency histogram since attach: one row per bucket, bar scaled to the fullest.
    let most = d.latency_bars.iter().copied().max().unwrap_or(0).max(1);
    let bar_w = usize::from(hist_area.width.saturating_sub(17)).max(1);
    let mut lines = Vec::with_capacity(d.latency_bars.len());
    for (i, &n) in d.latency_bars.iter().enumerate() {
        let name = match LATENCY_BARS_NS.get(i) {
            Some(&b) => format!("<{}", dur(b)),
            None => format!(">={}", dur(LATENCY_BARS_NS[LATENCY_BARS_NS.len() - 1])),
        };
        let over = LATENCY_BARS_NS
            .get(i.wrapping_sub(1))
            .is_some_and(|&lo| lo >= slo)
            || (i == LATENCY_BARS_NS.len() && LATENCY_BARS_NS[i - 1] >= slo);
        let len = if n == 0 {
            0
        } else {
            ((n as f64 / most as f64 * bar_w as f64).ceil() as usize).max(1)
        };
        lines.push(Line::from(vec![
            Span::raw(format!("{name:>8} ")),
            Span::styled(
                "█".repeat(len),
                Style::new().fg(if over { Color::Red } else { Color::Green }),
            ),
            label(format!(" {n}")),
        ]));
    }
    f.render_widget(
        Paragraph::new(lines).block(
            Block::new()
                .borders(Borders::LEFT)
                .title(" latency since attach"),
        ),
        hist_area,
    );
}
