//! Putting the terminal into full-screen raw mode, and — whatever happens — back.
//!
//! An on-call engineer's shell must never be left in raw mode on the alternate screen:
//! [`TerminalGuard`] restores it when dropped (normal exit, `?` errors, SIGINT/SIGTERM
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

/// The full-screen terminal; dropping it restores the terminal.
pub struct TerminalGuard {
    pub terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl TerminalGuard {
    /// Enters raw mode and the alternate screen and installs the restoring panic hook.
    pub fn new() -> io::Result<TerminalGuard> {
        HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                restore();
                previous(info);
            }));
        });
        terminal::enable_raw_mode()?;
        ACTIVE.store(true, Ordering::SeqCst);
        let mut out = io::stdout();
        let entered = out
            .queue(EnterAlternateScreen)
            .and_then(|o| o.queue(cursor::Hide))
            .and_then(|o| o.flush());
        if let Err(e) = entered {
            restore();
            return Err(e);
        }
        match Terminal::new(CrosstermBackend::new(io::stdout())) {
            Ok(terminal) => Ok(TerminalGuard { terminal }),
            Err(e) => {
                restore();
                Err(e)
            }
        }
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}
