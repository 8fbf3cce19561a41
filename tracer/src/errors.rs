//! How an error is shown: its message and every cause, on one line. Every place that
//! prints an error (the CLI's last line, warnings, log lines, the TUI's notices) goes
//! through [`chain`], so our error types can keep their causes as `#[source]` and never
//! quote them in their own message.

use std::error::Error;

/// `e` and its causes, outermost first, joined by ": " on one line (a newline inside a
/// message becomes a space, so a multi-line kernel verifier log stays one line).
///
/// A cause is left out when the message before it already ends with it: some crates we
/// use (aya's `EbpfError::MapError`, `"map error: {0}"`) quote their `#[from]` source in
/// their message, and the chain would otherwise say it twice. Our own errors never do.
pub fn chain(e: &(dyn Error + 'static)) -> String {
    let mut msg = e.to_string();
    let mut last = msg.clone();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !last.ends_with(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        last = text;
        cause = c.source();
    }
    msg.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::chain;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read {path}")]
    struct Read {
        path: &'static str,
        #[source]
        source: std::io::Error,
    }

    /// A third-party style error that quotes its source.
    #[derive(Debug, thiserror::Error)]
    #[error("map error: {0}")]
    struct Quoting(#[from] Read);

    #[test]
    fn every_cause_once_on_one_line() {
        let read = Read {
            path: "/x",
            source: std::io::Error::other("no such\nfile"),
        };
        assert_eq!(chain(&read), "cannot read /x: no such file");
        let quoting = Quoting(Read {
            path: "/y",
            source: std::io::Error::other("gone"),
        });
        // "map error: cannot read /y", then its source is not repeated, then the io error.
        assert_eq!(chain(&quoting), "map error: cannot read /y: gone");
        let any = anyhow::Error::new(Read {
            path: "/z",
            source: std::io::Error::other("gone"),
        })
        .context("pid 1 (/z)");
        assert_eq!(chain(any.as_ref()), "pid 1 (/z): cannot read /z: gone");
    }
}
