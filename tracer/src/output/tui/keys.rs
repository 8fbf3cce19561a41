//! What each key does ([`App::key`]): views, scrolling, freezing, the time window, the
//! process picker. Part of [`super::update`]; kept apart so the state and its event
//! handling read on their own.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::app::{App, Control, View, WINDOWS_S};

impl App {
    /// Shows the process `by` places after the shown one in the list (wrapping).
    pub(super) fn cycle_process(&mut self, by: isize) {
        let n = self.procs.order.len();
        if n < 2 {
            return;
        }
        let at = self.procs.shown_index().unwrap_or(0) as isize;
        let next = (at + by).rem_euclid(n as isize) as usize;
        self.show(self.procs.order[next]);
    }

    /// Keys while the picker is open: move, pick, close; q still quits.
    fn picker_key(&mut self, at: usize, k: KeyEvent) -> Control {
        let n = self.procs.order.len();
        let last = n.saturating_sub(1);
        match k.code {
            KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => {
                return Control::Quit
            }
            KeyCode::Char('q') | KeyCode::Char('Q') => return Control::Quit,
            KeyCode::Esc | KeyCode::Char('p') => self.ui.picker = None,
            KeyCode::Up | KeyCode::Char('k') => self.ui.picker = Some(at.saturating_sub(1)),
            KeyCode::Down | KeyCode::Char('j') => self.ui.picker = Some((at + 1).min(last)),
            KeyCode::Home => self.ui.picker = Some(0),
            KeyCode::End => self.ui.picker = Some(last),
            KeyCode::Enter => {
                if let Some(&pid) = self.procs.order.get(at) {
                    self.show(pid);
                }
                self.ui.picker = None;
            }
            _ => return Control::Continue,
        }
        self.dirty = true;
        Control::Continue
    }

    /// Rows a page of the Cycles or Pauses table holds (for PgUp / PgDn).
    fn page(&self) -> usize {
        usize::from(self.ui.size.1.saturating_sub(10)).max(1)
    }

    pub(super) fn key(&mut self, k: KeyEvent) -> Control {
        if k.kind == KeyEventKind::Release {
            return Control::Continue;
        }
        if let Some(at) = self.ui.picker {
            return self.picker_key(at, k);
        }
        let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
        match k.code {
            KeyCode::Char('c') if ctrl => return Control::Quit,
            KeyCode::Char('q') | KeyCode::Char('Q') => return Control::Quit,
            KeyCode::Char('?') | KeyCode::F(1) => self.ui.help = !self.ui.help,
            KeyCode::Esc => {
                self.ui.help = false;
                self.ui.cycle_detail = None;
            }
            KeyCode::Tab => self.ui.view = View::ALL[(self.ui.view.index() + 1) % View::ALL.len()],
            KeyCode::BackTab => {
                let n = View::ALL.len();
                self.ui.view = View::ALL[(self.ui.view.index() + n - 1) % n];
            }
            KeyCode::Char(c @ '1'..='9') if usize::from(c as u8 - b'1') < View::ALL.len() => {
                self.ui.view = View::ALL[usize::from(c as u8 - b'1')];
            }
            KeyCode::Char(' ') => {
                self.frozen = match self.frozen {
                    Some(_) => None,
                    None => Some(Box::new(self.live.clone())),
                };
            }
            KeyCode::Char('+') | KeyCode::Char('=') => {
                self.ui.window = (self.ui.window + 1).min(WINDOWS_S.len() - 1);
            }
            KeyCode::Char('-') | KeyCode::Char('_') => {
                self.ui.window = self.ui.window.saturating_sub(1);
            }
            KeyCode::Char('p') if self.config.several => {
                self.ui.help = false;
                self.ui.picker = Some(self.procs.shown_index().unwrap_or(0));
            }
            KeyCode::Char(']') if self.config.several => self.cycle_process(1),
            KeyCode::Char('[') if self.config.several => self.cycle_process(-1),
            KeyCode::Enter if self.ui.view == View::Cycles => {
                self.ui.cycle_detail = match self.ui.cycle_detail {
                    Some(_) => None,
                    None => self
                        .shown()
                        .gcs
                        .nth_newest(self.ui.cycle_sel)
                        .map(|g| g.cycle),
                };
            }
            KeyCode::Up | KeyCode::Char('k') => self.scroll(-1),
            KeyCode::Down | KeyCode::Char('j') => self.scroll(1),
            KeyCode::PageUp => self.scroll(-(self.page() as isize)),
            KeyCode::PageDown => self.scroll(self.page() as isize),
            KeyCode::Home => self.scroll(isize::MIN / 2),
            KeyCode::End => self.scroll(isize::MAX / 2),
            _ => return Control::Continue,
        }
        self.dirty = true;
        Control::Continue
    }

    /// Moves the selection of the current table; positive is towards older entries.
    fn scroll(&mut self, by: isize) {
        let gcs = self.shown().gcs.len();
        let stws = self.shown().stws.len();
        let (pos, len) = match self.ui.view {
            View::Cycles => (&mut self.ui.cycle_sel, gcs),
            View::Pauses => (&mut self.ui.pause_scroll, stws),
            _ => return,
        };
        let max = len.saturating_sub(1) as isize;
        *pos = (*pos as isize).saturating_add(by).clamp(0, max.max(0)) as usize;
    }
}
