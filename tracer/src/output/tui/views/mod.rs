//! Drawing: [`draw`] renders an [`App`] into a ratatui frame, one file per view. It only
//! reads the state, never blocks, and copes with no data at all and with any terminal
//! size (below [`MIN_WIDTH`]×[`MIN_HEIGHT`] it shows a single line saying so).

mod advice;
mod allocations;
mod cycles;
mod header;
mod overlays;
mod overview;
mod pauses;

use ratatui::{
    layout::{Constraint, Layout, Rect},
    style::{Color, Modifier, Style},
    text::Span,
    widgets::{Paragraph, Wrap},
    Frame,
};

use super::app::{App, View};
use super::data::Data;
use super::fmt::dur;
use crate::binary::StwReason;

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
    header::draw_header(app, f, header);
    header::draw_tabs(app, f, tabs);
    header::draw_alerts(app, f, alert);
    match app.ui.view {
        View::Overview => overview::draw_overview(app, f, body),
        View::Cycles => cycles::draw_cycles(app, f, body),
        View::Pauses => pauses::draw_pauses(app, f, body),
        View::Allocations => allocations::draw_allocations(app, f, body),
        View::Advice => advice::draw(app, f, body),
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
        overlays::draw_help(app, f, body);
    }
    if let Some(at) = app.ui.picker {
        overlays::draw_picker(app, at, f, body);
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

/// The four pause figures, or `-` each when there is no pause.
fn quad(p: Option<[u64; 4]>) -> [String; 4] {
    match p {
        Some(v) => v.map(dur),
        None => std::array::from_fn(|_| "-".to_string()),
    }
}

/// Colour of a stop in the timeline.
fn stop_color(r: StwReason) -> Color {
    match r {
        StwReason::GcSweepTerm => SWEEP_COLOR,
        StwReason::GcMarkTerm => MARK_COLOR,
        _ => NON_GC_COLOR,
    }
}

/// Seconds since attach of a CLOCK_MONOTONIC time, `+12.3s`.
fn rel(d: &Data, ns: u64) -> String {
    match d.first_ns {
        Some(f) => format!("+{:.1}s", ns.saturating_sub(f) as f64 / 1e9),
        None => "?".to_string(),
    }
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
