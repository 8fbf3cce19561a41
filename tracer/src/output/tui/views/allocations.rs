//! The Allocations view: allocation rate, types and sites.

use ratatui::{
    layout::{Constraint, Layout, Rect},
    style::{Color, Style},
    text::{Line, Span},
    widgets::{Block, Borders, Paragraph, Row, Table},
    Frame,
};

use super::super::app::App;
use super::super::fmt::bytes;
use super::*;
use crate::probes::AllocMode;

/// The innermost frames of an allocation stack that are not the runtime's.
fn site_stack(frames: &[crate::decode::events::Frame]) -> String {
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

pub(super) fn draw_allocations(app: &App, f: &mut Frame, area: Rect) {
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
        super::overview::draw_alloc_rate(d, app.window_s(), f, spark);
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
                bytes(t.counts.bytes),
                format!("{:.0}%", t.counts.bytes as f64 / all * 100.0),
                t.counts.objects.to_string(),
                t.name.clone(),
            ],
            error(t.counts.error_permille),
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
                    bytes(s.counts.bytes),
                    s.counts.objects.to_string(),
                    s.type_name.clone(),
                    site_stack(&s.frames),
                ],
                error(s.counts.error_permille),
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
    match crate::model::records::permille_as_pct(permille) {
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
fn draw_size_classes(types: &crate::model::records::AllocTypesRecord, f: &mut Frame, area: Rect) {
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
