//! The Overview: pause percentiles against the SLO, GC CPU, cycle rate, the pause
//! timeline, and the heap and allocation-rate charts over the time window.

use ratatui::{
    buffer::Buffer,
    layout::{Constraint, Layout, Rect},
    style::{Color, Style},
    symbols::Marker,
    text::{Line, Span},
    widgets::{Axis, Block, Borders, Chart, Dataset, GraphType, Paragraph, Sparkline, Widget},
    Frame,
};

use super::super::app::App;
use super::super::data::Data;
use super::super::fmt::{bytes, dur, secs};
use super::super::history::Window;
use super::*;

pub(super) fn draw_overview(app: &App, f: &mut Frame, area: Rect) {
    let d = app.shown();
    let w = app.window_s();
    // Merged once for the whole view from the per-second history.
    let window = d.window(w);
    let [stats, timeline, charts] = Layout::vertical([
        Constraint::Length(4),
        Constraint::Length(5),
        Constraint::Min(0),
    ])
    .areas(area);

    // Pause percentiles against the SLO, the GC's CPU share, cycle rate.
    let slo = app.config.slo_pause_ns;
    let row = |name: &str, p: Option<[u64; 4]>, n: usize| {
        let [p50, p90, p99, max] = quad(p);
        let breach = p.is_some_and(|p| p[2] > slo);
        let p99_style = if breach {
            Style::new().fg(Color::Red).bold()
        } else {
            Style::new().fg(Color::Green)
        };
        Line::from(vec![
            Span::raw(format!(" {name:<10}")),
            Span::raw(format!("{p50:>9}{p90:>9}")),
            Span::styled(format!("{p99:>9}"), p99_style),
            Span::raw(format!("{max:>9}")),
            label(format!("  {n} pauses")),
        ])
    };
    let in_window = window.pauses.count() as usize;
    let cpu_total = d
        .gc_cpu_percent()
        .map_or("?".to_string(), |c| format!("{c}%"));
    let cpu_window = d
        .window_gc_cpu_percent(&window, w)
        .map_or("?".to_string(), |c| format!("{c:.1}%"));
    let cps = d
        .cycles_per_s(&window, w)
        .map_or("?".to_string(), |c| format!("{c:.2}"));
    let lines = vec![
        Line::from(vec![
            label(" pause      "),
            label("     p50      p90      p99      max"),
            label(format!("  SLO p99 {}", dur(slo))),
        ]),
        row(
            &format!("last {}", secs(w as f64)),
            window.percentiles(),
            in_window,
        ),
        row("attached", d.total_percentiles(), d.pauses.count() as usize),
        Line::from(vec![
            label(" GC CPU "),
            value(cpu_total),
            label(" since start, "),
            value(cpu_window),
            label(format!(
                " last {} (SLO {}%)   cycles/s ",
                secs(w as f64),
                app.config.slo_gc_cpu_percent
            )),
            value(cps),
            label("   cycles "),
            value(d.cycles.to_string()),
        ]),
    ];
    f.render_widget(Paragraph::new(lines), stats);
    draw_timeline(app, &window, f, timeline);

    let [heap, rate] =
        Layout::horizontal([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(charts);
    draw_heap_chart(d, &window, w, f, heap);
    draw_alloc_rate(d, w, f, rate);
}

/// One bar per stop-the-world in the window, newest on the right, on a log scale so a
/// 50 µs stop stays visible next to a 30 ms one. The title's maximum and non-GC counts are over the whole window; the bars are the
/// newest stops that fit.
fn draw_timeline(app: &App, window: &Window, f: &mut Frame, area: Rect) {
    let d = app.shown();
    let w = app.window_s();
    let [title, bars] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(area);
    let newest = usize::from(bars.width);
    let mut stops: Vec<_> = d.window_stws(w).rev().take(newest).collect();
    stops.reverse();
    let max = window.pauses.max().unwrap_or(0);
    let non_gc = &window.non_gc;
    let mut spans = vec![
        Span::raw(" Pause timeline"),
        label(format!(
            " (log, max {}) ",
            if max > 0 { dur(max) } else { "-".into() }
        )),
        Span::styled("■", Style::new().fg(SWEEP_COLOR)),
        Span::raw("sweep term "),
        Span::styled("■", Style::new().fg(MARK_COLOR)),
        Span::raw("mark term "),
        Span::styled("■", Style::new().fg(NON_GC_COLOR)),
        Span::raw("non-GC"),
    ];
    if !non_gc.is_empty() {
        let what: Vec<String> = non_gc
            .iter()
            .map(|(r, n)| format!("{} ×{n}", r.as_str()))
            .collect();
        spans.push(Span::styled(
            format!(": {}", what.join(", ")),
            Style::new().fg(NON_GC_COLOR),
        ));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), title);
    if stops.is_empty() {
        f.render_widget(
            Paragraph::new(label("  no stop-the-world pause in the window")),
            bars,
        );
        return;
    }
    // log10 of the duration in µs, from 0.1 µs: every decade gets the same height.
    let scale = |ns: u64| ((ns as f64 / 100.0).max(1.0)).log10();
    // The bars' own maximum too: the window's edge is rounded to whole seconds.
    let top = scale(max.max(stops.iter().map(|s| s.duration_ns).max().unwrap_or(0))).max(1.0);
    let n = usize::from(bars.width).min(stops.len());
    let columns = stops[stops.len() - n..]
        .iter()
        .map(|s| (scale(s.duration_ns) / top, stop_color(s.reason)))
        .collect();
    f.render_widget(ColumnBars(columns), bars);
}

/// Vertical bars one cell wide, heights as fractions of the area, in eighths of a cell.
struct ColumnBars(Vec<(f64, Color)>);

impl Widget for ColumnBars {
    fn render(self, area: Rect, buf: &mut Buffer) {
        const EIGHTHS: [&str; 9] = [" ", "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"];
        let h = u32::from(area.height);
        for (i, (frac, color)) in self.0.into_iter().enumerate() {
            let x = area.x + i as u16;
            if x >= area.right() {
                break;
            }
            // At least one eighth, so every stop is seen.
            let eighths = ((frac.clamp(0.0, 1.0) * f64::from(h * 8)).round() as u32).max(1);
            for row in 0..h {
                let y = area.bottom() - 1 - row as u16;
                let fill = eighths.saturating_sub(row * 8).min(8) as usize;
                if fill == 0 {
                    break;
                }
                if let Some(cell) = buf.cell_mut((x, y)) {
                    cell.set_symbol(EIGHTHS[fill]).set_fg(color);
                }
            }
        }
    }
}

/// Every cycle of the window, or where there are more than the ring keeps, one point per
/// second (ten above two minutes) for the older part ([`Data::heap_points`]).
fn draw_heap_chart(d: &Data, window: &Window, w: u64, f: &mut Frame, area: Rect) {
    let now = d.now_ns;
    // The x axis spans the window, or only the time attached when that is shorter.
    let span = d.covered_s(w).max(1.0);
    let x = |ns: u64| -((now.saturating_sub(ns)) as f64 / 1e9);
    let mb = |b: u64| b as f64 / (1024.0 * 1024.0);
    let points = d.heap_points(window, w);
    let live: Vec<(f64, f64)> = points
        .iter()
        .filter_map(|h| Some((x(h.end_ns), mb(h.live_bytes?))))
        .collect();
    let goal: Vec<(f64, f64)> = points
        .iter()
        .filter_map(|h| Some((x(h.end_ns), mb(h.goal_bytes?))))
        .collect();
    let top = live
        .iter()
        .chain(goal.iter())
        .map(|p| p.1)
        .fold(0.0f64, f64::max);
    // The limit is drawn only when it is near enough to matter; otherwise named.
    let limit = d
        .latest_gc()
        .and_then(|g| g.memory_limit_bytes)
        .filter(|&l| l != i64::MAX && l > 0)
        .map(|l| l as u64);
    let limit_line: Vec<(f64, f64)> = match limit {
        Some(l) if mb(l) <= top * 2.0 => vec![(-span, mb(l)), (0.0, mb(l))],
        _ => Vec::new(),
    };
    let ymax = limit_line.first().map_or(top, |p| p.1.max(top)).max(1.0) * 1.1;
    let mut title = vec![
        Span::raw(" Heap MiB: "),
        Span::styled("live", Style::new().fg(LIVE_COLOR)),
        Span::raw(" "),
        Span::styled("goal", Style::new().fg(GOAL_COLOR)),
        Span::raw(" "),
    ];
    title.push(match limit {
        Some(l) => Span::styled(format!("limit {} ", bytes(l)), Style::new().fg(LIMIT_COLOR)),
        None => label("no limit "),
    });
    let block = Block::new().borders(Borders::ALL).title(Line::from(title));
    if live.is_empty() && goal.is_empty() {
        f.render_widget(
            Paragraph::new(label(" no completed cycle in the window")).block(block),
            area,
        );
        return;
    }
    let mut sets = vec![
        Dataset::default()
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(Style::new().fg(GOAL_COLOR))
            .data(&goal),
        Dataset::default()
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(Style::new().fg(LIVE_COLOR))
            .data(&live),
    ];
    if !limit_line.is_empty() {
        sets.push(
            Dataset::default()
                .marker(Marker::Braille)
                .graph_type(GraphType::Line)
                .style(Style::new().fg(LIMIT_COLOR))
                .data(&limit_line),
        );
    }
    let chart = Chart::new(sets)
        .block(block)
        .legend_position(None)
        .x_axis(
            Axis::default()
                .bounds([-span, 0.0])
                .labels([format!("-{}", secs(span)), "now".to_string()])
                .style(Style::new().fg(Color::DarkGray)),
        )
        .y_axis(
            Axis::default()
                .bounds([0.0, ymax])
                .labels(["0".to_string(), format!("{ymax:.0}")])
                .style(Style::new().fg(Color::DarkGray)),
        );
    f.render_widget(chart, area);
}

pub(super) fn draw_alloc_rate(d: &Data, w: u64, f: &mut Frame, area: Rect) {
    let start = d.window_start(w);
    let rates: Vec<u64> = d
        .allocs
        .iter()
        .filter(|a| a.ts_ns >= start)
        .filter_map(|a| a.rate_bytes_per_s)
        .collect();
    let now = d
        .latest_alloc_rate()
        .map_or("?".to_string(), |r| format!("{}/s", bytes(r)));
    let max = rates.iter().copied().max().unwrap_or(0);
    let block = Block::new().borders(Borders::ALL).title(Line::from(vec![
        Span::raw(" Alloc rate "),
        value(now),
        label(format!(" max {}/s ", bytes(max))),
    ]));
    let inner_w = usize::from(area.width.saturating_sub(2));
    let shown = &rates[rates.len().saturating_sub(inner_w)..];
    if shown.is_empty() {
        f.render_widget(
            Paragraph::new(label(" no allocation sample yet")).block(block),
            area,
        );
        return;
    }
    f.render_widget(
        Sparkline::default()
            .block(block)
            .data(shown)
            .max(max.max(1))
            .style(Style::new().fg(Color::Magenta)),
        area,
    );
}
