//! (temporary stub; the real outputs are being written)
use crate::records::Record;
use std::io::Write;

pub trait Sink {
    fn record(&mut self, rec: &Record) -> std::io::Result<()>;
    fn flush(&mut self) -> std::io::Result<()>;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Gctrace,
    Json,
}

struct Dbg(Box<dyn Write + Send>);
impl Sink for Dbg {
    fn record(&mut self, rec: &Record) -> std::io::Result<()> {
        writeln!(self.0, "{rec:?}")
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

pub fn sink_for(_format: Format, w: Box<dyn Write + Send>) -> Box<dyn Sink + Send> {
    Box::new(Dbg(w))
}
