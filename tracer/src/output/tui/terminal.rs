//! Putting the terminal into full-screen raw mode, and — whatever happens — back.
//!
//! An on-call engineer's shell must never be left in raw mode on the alternate screen:
//! [`Restore`] restores it when dropped (normal exit, `?` errors, SIGINT/SIGTERM
//! which end the event loop), and a panic hook restores it before the panic message is
//! printed (so the message is readable, and also when a panic aborts).

use std::io::{self, Stdout, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

use crossterm::{
    cursor,
    terminal::{self, EnterAlternateScreen, LeaveAlternateScreen},
    QueueableCommand,
};
use ratatui::{backend::CrosstermBackend, Terminal};

/// Whether the terminal is currently in our full-screen mode (so restoring twice, from
/// the panic hook and then from Drop, does nothing the second time).
static ACTIVE: AtomicBool = AtomicBool::new(false);
static HOOK: Once = Once::new();

/// Leaves raw mode and the alternate screen and shows the cursor, if we entered them.
/// Errors are ignored: there is nothing better to do while restoring.
pub fn restore() {
    if !ACTIVE.swap(false, Ordering::SeqCst) {
        return;
    }
    let _ = terminal::disable_raw_mode();
    let mut out = io::stdout();
    let _ = out.queue(LeaveAlternateScreen);
    let _ = out.queue(cursor::Show);
    let _ = out.flush();
}

/// Proof that the terminal is in full-screen mode: dropping it restores the terminal.
/// Kept apart from the [`Terminal`] so the UI loop can draw into any backend and hold
/// this only when the backend is the real terminal.
pub struct Restore(());

impl Drop for Restore {
    fn drop(&mut self) {
        restore();
    }
}

/// Enters raw mode and the alternate screen and installs the restoring panic hook.
pub fn enter() -> io::Result<(Terminal<CrosstermBackend<Stdout>>, Restore)> {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
    terminal::enable_raw_mode()?;
    ACTIVE.store(true, Ordering::SeqCst);
    // From here on, an early return restores the terminal by dropping this.
    let guard = Restore(());
    let mut out = io::stdout();
    out.queue(EnterAlternateScreen)
        .and_then(|o| o.queue(cursor::Hide))
        .and_then(|o| o.flush())?;
    let terminal = Terminal::new(CrosstermBackend::new(io::stdout()))?;
    Ok((terminal, guard))
}
