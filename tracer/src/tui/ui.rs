//! Drawing: [`draw`] renders an [`App`] into a ratatui frame. It only reads the state,
//! never blocks, and copes with no data at all and with any terminal size (below
//! [`MIN_WIDTH`]×[`MIN_HEIGHT`] it shows a single line saying so).

use ratatui::{
    buffer::Buffer,
    layout::{Constraint, Layout, Rect},
    style::{Color, Modifier, Style},
    symbols::Marker,
    text::{Line, Span},
    widgets::{
        Axis, Block, Borders, Chart, Clear, Dataset, GraphType, Paragraph, Row, Sparkline, Table,
        TableState, Widget, Wrap,
    },
    Frame,
};

use super::app::{alerts, App, Data, Ended, View, LATENCY_BARS_NS};
use super::fmt::{bytes, dur, mib, ms, secs};
use crate::alloc::AllocMode;
use crate::events::StwReason;
use crate::records::GcRecord;

/// Smallest terminal the full UI is drawn in; below it, one line says so.
pub const MIN_WIDTH: u16 = 50;
pub const MIN_HEIGHT: u16 = 12;

const SWEEP_COLOR: Color = Color::Cyan;
const MARK_COLOR: Color = Color::Blue;
const NON_GC_COLOR: Color = Color::Yellow;
const LIVE_COLOR: Color = Color::Green;
const GOAL_COLOR: Color = Color::Yellow;
const LIMIT_COLOR: Color = Color::Red;

/// Renders the whole screen.
pub fn draw(app: &App, f: &mut Frame) {
    let area = f.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let msg = format!(
            "terminal {}x{} too small for gctrace-bpf (needs {MIN_WIDTH}x{MIN_HEIGHT}); q quits",
            area.width, area.height
        );
        f.render_widget(
            Paragraph::new(msg)
                .wrap(Wrap { trim: true })
                .style(Style::new().fg(Color::Yellow)),
            area,
        );
        return;
    }
    let [header, tabs, alert, body, footer] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_header(app, f, header);
    draw_tabs(app, f, tabs);
    draw_alerts(app, f, alert);
    match app.ui.view {
        View::Overview => draw_overview(app, f, body),
        View::Cycles => draw_cycles(app, f, body),
        View::Pauses => draw_pauses(app, f, body),
        View::Allocations => draw_allocations(app, f, body),
        View::Advice => super::advice::draw(app, f, body),
    }
    let keys = if app.config.several {
        " q quit  p process  tab/1-5 view  ↑↓ scroll  ⏎ detail  space freeze  ? help"
    } else {
        " q quit  tab/1-5 view  ↑↓ scroll  ⏎ detail  space freeze  +/- window  ? help"
    };
    f.render_widget(
        Paragraph::new(keys).style(Style::new().fg(Color::DarkGray)),
        footer,
    );
    if app.ui.help {
        draw_help(app, f, body);
    }
    if let Some(at) = app.ui.picker {
        draw_picker(app, at, f, body);
    }
}

/// Secondary text (names of figures, hints).
fn label<'a>(s: impl Into<std::borrow::Cow<'a, str>>) -> Span<'a> {
    Span::styled(s, Style::new().fg(Color::DarkGray))
}

/// A figure the reader looks for.
fn value(s: String) -> Span<'static> {
    Span::styled(s, Style::new().add_modifier(Modifier::BOLD))
}

fn draw_header(app: &App, f: &mut Frame, area: Rect) {
    let d = app.shown();
    let g = d.latest_gc();
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
    let gogc = match g.and_then(|g| g.gogc) {
        Some(v) if v < 0 => "off".to_string(),
        Some(v) => v.to_string(),
        None => "?".to_string(),
    };
    let limit = match g.and_then(|g| g.memory_limit_bytes) {
        Some(i64::MAX) => "off".to_string(),
        Some(v) => bytes(v.max(0) as u64),
        None => "?".to_string(),
    };
    let procs = g
        .and_then(|g| g.gomaxprocs)
        .or(d.process.as_ref().and_then(|p| p.gomaxprocs))
        .map_or("?".to_string(), |p| p.to_string());
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
fn draw_tabs(app: &App, f: &mut Frame, area: Rect) {
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

fn draw_alerts(app: &App, f: &mut Frame, area: Rect) {
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

/// The four pause figures, or `-` each when there is no pause.
fn quad(p: Option<[u64; 4]>) -> [String; 4] {
    match p {
        Some(v) => v.map(dur),
        None => std::array::from_fn(|_| "-".to_string()),
    }
}

fn draw_overview(app: &App, f: &mut Frame, area: Rect) {
    let d = app.shown();
    let w = app.window_s();
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
    let in_window = d.window_stws(w).count();
    let cpu_total = d
        .gc_cpu_percent()
        .map_or("?".to_string(), |c| format!("{c}%"));
    let cpu_window = d
        .window_gc_cpu_percent(w)
        .map_or("?".to_string(), |c| format!("{c:.1}%"));
    let cps = d
        .cycles_per_s(w)
        .map_or("?".to_string(), |c| format!("{c:.2}"));
    let lines = vec![
        Line::from(vec![
            label(" pause      "),
            label("     p50      p90      p99      max"),
            label(format!("  SLO p99 {}", dur(slo))),
        ]),
        row(
            &format!("last {}", secs(w as f64)),
            d.window_percentiles(w),
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
    draw_timeline(app, f, timeline);

    let [heap, rate] =
        Layout::horizontal([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(charts);
    draw_heap_chart(d, w, f, heap);
    draw_alloc_rate(d, w, f, rate);
}

/// Colour of a stop in the timeline.
fn stop_color(r: StwReason) -> Color {
    match r {
        StwReason::GcSweepTerm => SWEEP_COLOR,
        StwReason::GcMarkTerm => MARK_COLOR,
        _ => NON_GC_COLOR,
    }
}

/// One bar per stop-the-world in the window, newest on the right, on a log scale so a
/// 50 µs stop stays visible next to a 30 ms one.
fn draw_timeline(app: &App, f: &mut Frame, area: Rect) {
    let d = app.shown();
    let w = app.window_s();
    let [title, bars] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(area);
    let stops: Vec<_> = d.window_stws(w).collect();
    let max = stops.iter().map(|s| s.duration_ns).max().unwrap_or(0);
    let mut non_gc: std::collections::BTreeMap<StwReason, usize> = Default::default();
    for s in stops.iter().filter(|s| !s.reason.is_gc()) {
        *non_gc.entry(s.reason).or_default() += 1;
    }
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
    let top = scale(max).max(1.0);
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

fn draw_heap_chart(d: &Data, w: u64, f: &mut Frame, area: Rect) {
    let now = d.now_ns;
    // The x axis spans the window, or only the time attached when that is shorter.
    let span = d.covered_s(w).max(1.0);
    let x = |ns: u64| -((now.saturating_sub(ns)) as f64 / 1e9);
    let mb = |b: u64| b as f64 / (1024.0 * 1024.0);
    let gcs: Vec<&GcRecord> = d.window_gcs(w).collect();
    let live: Vec<(f64, f64)> = gcs
        .iter()
        .filter_map(|g| Some((x(g.end_ns), mb(g.heap_live_bytes?))))
        .collect();
    let goal: Vec<(f64, f64)> = gcs
        .iter()
        .filter_map(|g| Some((x(g.end_ns), mb(g.heap_goal_bytes?))))
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

fn draw_alloc_rate(d: &Data, w: u64, f: &mut Frame, area: Rect) {
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

/// Seconds since attach of a CLOCK_MONOTONIC time, `+12.3s`.
fn rel(d: &Data, ns: u64) -> String {
    match d.first_ns {
        Some(f) => format!("+{:.1}s", ns.saturating_sub(f) as f64 / 1e9),
        None => "?".to_string(),
    }
}

fn draw_cycles(app: &App, f: &mut Frame, area: Rect) {
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

fn draw_pauses(app: &App, f: &mut Frame, area: Rect) {
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

/// The innermost frames of an allocation stack that are not the runtime's.
fn site_stack(frames: &[crate::events::Frame]) -> String {
    let names: Vec<&str> = frames
        .iter()
        .map(|f| f.function.as_str())
        .filter(|f| !f.starts_with("runtime.") && !f.starts_with("internal/runtime/"))
        .collect();
    if names.is_empty() {
        frames
            .first()
            .map_or("?".to_string(), |f| f.function.clone())
    } else {
        names.join(" < ")
    }
}

fn draw_allocations(app: &App, f: &mut Frame, area: Rect) {
    let d = app.shown();
    let rate = d
        .latest_alloc_rate()
        .map_or("?".to_string(), |r| format!("{}/s", bytes(r)));
    let total = d
        .allocs
        .last()
        .map_or("?".to_string(), |a| bytes(a.total_bytes));
    let Some(types) = &d.alloc_types else {
        let [top, spark] =
            Layout::vertical([Constraint::Length(6), Constraint::Min(0)]).areas(area);
        let how = if app.config.allocs == AllocMode::Rate {
            vec![
                Line::from(""),
                Line::from(" Top allocation sites and types need allocation probes; restart with"),
                Line::from(vec![
                    Span::styled("   --allocs sample", Style::new().bold()),
                    Span::raw("  short bursts within --overhead-budget (default 2%), or"),
                ]),
                Line::from(vec![
                    Span::styled("   --allocs exact", Style::new().bold()),
                    Span::raw("   every allocation (slows allocating code a lot)"),
                ]),
            ]
        } else {
            vec![
                Line::from(""),
                Line::from(" Waiting for the first allocation snapshot…"),
            ]
        };
        let mut lines = vec![Line::from(vec![
            label(" allocation rate "),
            value(rate),
            label("   allocated since program start "),
            value(total),
        ])];
        lines.extend(how);
        f.render_widget(Paragraph::new(lines), top);
        draw_alloc_rate(d, app.window_s(), f, spark);
        return;
    };
    let [head, mid, sites_area] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Percentage(50),
        Constraint::Min(0),
    ])
    .areas(area);
    f.render_widget(
        Paragraph::new(Line::from(vec![
            label(if types.exact {
                " counted exactly: "
            } else {
                " sampled estimates (± = 95% sampling error): "
            }),
            value(format!("{} objects", types.objects)),
            label(", "),
            value(bytes(types.bytes)),
            label(" since attach; rate "),
            value(rate),
            label(if types.dropped_objects > 0 {
                "; not counted (maps full): "
            } else {
                ""
            }),
            Span::styled(
                if types.dropped_objects > 0 {
                    types.dropped_objects.to_string()
                } else {
                    String::new()
                },
                Style::new().fg(Color::Red),
            ),
        ])),
        head,
    );
    let [types_area, classes_area] =
        Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(mid);
    let all = types.bytes.max(1) as f64;
    let rows = types.types.iter().map(|t| {
        Row::new(with_error(
            types.exact,
            2,
            vec![
                bytes(t.bytes),
                format!("{:.0}%", t.bytes as f64 / all * 100.0),
                t.objects.to_string(),
                t.name.clone(),
            ],
            error(t.error_permille),
        ))
    });
    let widths = [
        Constraint::Length(7),
        Constraint::Length(4),
        Constraint::Length(8),
        Constraint::Min(10),
    ];
    let header = ["bytes", "%", "objects", "type"].map(String::from).to_vec();
    f.render_widget(
        Table::new(
            rows,
            with_error(types.exact, 2, widths.to_vec(), Constraint::Length(6)),
        )
        .header(
            Row::new(with_error(types.exact, 2, header, "±".into()))
                .style(Style::new().fg(Color::DarkGray).bold()),
        )
        .block(Block::new().title(" top types")),
        types_area,
    );
    draw_size_classes(types, f, classes_area);

    let sites_exact = d.alloc_sites.as_ref().is_none_or(|s| s.exact);
    let rows: Vec<Row> = d
        .alloc_sites
        .iter()
        .flat_map(|s| s.sites.iter())
        .map(|s| {
            Row::new(with_error(
                sites_exact,
                1,
                vec![
                    bytes(s.bytes),
                    s.objects.to_string(),
                    s.type_name.clone(),
                    site_stack(&s.frames),
                ],
                error(s.error_permille),
            ))
        })
        .collect();
    f.render_widget(
        Table::new(
            rows,
            with_error(
                sites_exact,
                1,
                vec![
                    Constraint::Length(7),
                    Constraint::Length(8),
                    Constraint::Length(16),
                    Constraint::Min(10),
                ],
                Constraint::Length(6),
            ),
        )
        .header(
            Row::new(with_error(
                sites_exact,
                1,
                ["bytes", "objects", "type", "site (innermost first)"]
                    .map(String::from)
                    .to_vec(),
                "±".into(),
            ))
            .style(Style::new().fg(Color::DarkGray).bold()),
        )
        .block(Block::new().borders(Borders::TOP).title(" top sites")),
        sites_area,
    );
}

/// A sampled figure's 95 % error ("±12%"); nothing when counted exactly.
fn error(permille: Option<u32>) -> String {
    match crate::records::permille_as_pct(permille) {
        Some(pct) if pct >= 10.0 => format!("±{pct:.0}%"),
        Some(pct) => format!("±{pct:.1}%"),
        None => String::new(),
    }
}

/// A table's columns with the sampling-error column inserted at `at`, unless counting
/// exactly (then there is no error to show, and no column).
fn with_error<T>(exact: bool, at: usize, mut columns: Vec<T>, error: T) -> Vec<T> {
    if !exact {
        columns.insert(at.min(columns.len()), error);
    }
    columns
}

/// Bytes by size class, in power-of-two bins (≤16 B … ≤32 KiB, then large objects).
fn draw_size_classes(types: &crate::records::AllocTypesRecord, f: &mut Frame, area: Rect) {
    const BINS: usize = 13;
    let mut bins = [0u64; BINS];
    for c in &types.size_classes {
        // ≤16 → 0, ≤32 → 1, … ≤32768 → 11, larger → 12.
        let bits = 64 - c.size.saturating_sub(1).leading_zeros();
        let i = (bits.saturating_sub(4) as usize).min(BINS - 1);
        bins[i] += c.bytes;
    }
    let most = bins.iter().copied().max().unwrap_or(0).max(1);
    let bar_w = usize::from(area.width.saturating_sub(18)).max(1);
    let lines: Vec<Line> = bins
        .iter()
        .enumerate()
        .skip_while(|(_, b)| **b == 0)
        .map(|(i, &b)| {
            let name = if i == BINS - 1 {
                ">32K".to_string()
            } else {
                let v = 16u64 << i;
                if v < 1024 {
                    format!("≤{v}B")
                } else {
                    format!("≤{}K", v / 1024)
                }
            };
            let len = if b == 0 {
                0
            } else {
                ((b as f64 / most as f64 * bar_w as f64).ceil() as usize).max(1)
            };
            Line::from(vec![
                Span::raw(format!("{name:>6} ")),
                Span::styled("█".repeat(len), Style::new().fg(Color::Magenta)),
                label(format!(" {}", bytes(b))),
            ])
        })
        .collect();
    f.render_widget(
        Paragraph::new(lines).block(
            Block::new()
                .borders(Borders::LEFT)
                .title(" bytes by size class"),
        ),
        area,
    );
}

fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

fn draw_help(app: &App, f: &mut Frame, area: Rect) {
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
fn draw_picker(app: &App, at: usize, f: &mut Frame, area: Rect) {
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
