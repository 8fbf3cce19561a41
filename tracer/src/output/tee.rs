//! Two views of one run: every record goes to both sinks, in order. This is how the
//! Prometheus view rides along with the primary one (gctrace text, JSON or the TUI)
//! without either knowing about the other.

use std::io;

use super::Sink;
use crate::model::records::Record;

/// Writes every record to `first`, then to `second`.
pub struct Tee<A, B> {
    first: A,
    second: B,
}

impl<A: Sink, B: Sink> Tee<A, B> {
    pub fn new(first: A, second: B) -> Tee<A, B> {
        Tee { first, second }
    }
}

impl<A: Sink, B: Sink> Sink for Tee<A, B> {
    /// Both sinks get the record even when the first fails (a full disk must not freeze
    /// the metrics); the first error is reported.
    fn record(&mut self, pid: u32, rec: &Record) -> io::Result<()> {
        let first = self.first.record(pid, rec);
        let second = self.second.record(pid, rec);
        first.and(second)
    }

    fn flush(&mut self) -> io::Result<()> {
        let first = self.first.flush();
        let second = self.second.flush();
        first.and(second)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::records::Summary;

    /// Remembers what it was given; fails on demand.
    #[derive(Default)]
    struct Log {
        seen: Vec<(u32, Record)>,
        flushes: usize,
        fail: bool,
    }

    impl Sink for Log {
        fn record(&mut self, pid: u32, rec: &Record) -> io::Result<()> {
            self.seen.push((pid, rec.clone()));
            if self.fail {
                return Err(io::Error::other("full"));
            }
            Ok(())
        }
        fn flush(&mut self) -> io::Result<()> {
            self.flushes += 1;
            if self.fail {
                return Err(io::Error::other("full"));
            }
            Ok(())
        }
    }

    #[test]
    fn both_sinks_get_every_record_even_after_an_error() {
        let failing = Log {
            fail: true,
            ..Log::default()
        };
        let mut tee = Tee::new(failing, Log::default());
        let rec = Record::Summary(Summary::default());
        assert!(tee.record(7, &rec).is_err());
        assert!(tee.flush().is_err());
        assert_eq!(tee.first.seen, vec![(7, rec.clone())]);
        assert_eq!(tee.second.seen, vec![(7, rec)]);
        assert_eq!((tee.first.flushes, tee.second.flushes), (1, 1));

        let mut ok = Tee::new(Log::default(), Log::default());
        assert!(ok.record(1, &Record::Summary(Summary::default())).is_ok());
        assert!(ok.flush().is_ok());
    }
}
