//! Writing a recording as the run goes.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use flate2::{write::DeflateEncoder, Compression};
use tracer_common::RawEvent;

use super::{frame, End, Header, BLOCK_MAGIC, FORMAT_VERSION, MAGIC};
use crate::decode::events::AllocBatch;

/// Uncompressed bytes gathered before a block is written.
const BLOCK_BYTES: usize = 64 << 10;
/// A block is written at least this often, so little is lost if the tracer is killed.
const BLOCK_EVERY: Duration = Duration::from_secs(1);

pub struct Recorder {
    out: BufWriter<File>,
    block: Vec<u8>,
    last_block: Instant,
}

impl Recorder {
    /// Create `path` (mode 0600; owned by the invoking user when run through sudo) and
    /// write the header.
    pub fn create(path: &Path, header: &Header) -> io::Result<Recorder> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        chown_to_sudo_user(path);
        let mut out = BufWriter::new(file);
        let header_json = serde_json::to_vec(header).map_err(io::Error::other)?;
        out.write_all(MAGIC)?;
        out.write_all(&FORMAT_VERSION.to_le_bytes())?;
        out.write_all(&(header_json.len() as u32).to_le_bytes())?;
        out.write_all(&header_json)?;
        out.flush()?;
        Ok(Recorder {
            out,
            block: Vec::with_capacity(BLOCK_BYTES + 4096),
            last_block: Instant::now(),
        })
    }

    pub(super) fn frame(&mut self, kind: u8, bytes: &[u8]) -> io::Result<()> {
        self.block.push(kind);
        self.block
            .extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        self.block.extend_from_slice(bytes);
        if self.block.len() >= BLOCK_BYTES {
            self.write_block()?;
        }
        Ok(())
    }

    pub fn raw(&mut self, ev: &RawEvent) -> io::Result<()> {
        self.frame(frame::RAW_EVENT, ev.as_bytes())
    }

    pub fn alloc_batch(&mut self, b: &AllocBatch) -> io::Result<()> {
        let json = serde_json::to_vec(b).map_err(io::Error::other)?;
        self.frame(frame::ALLOC_BATCH, &json)
    }

    /// Write the pending block if it is due (call on a timer).
    pub fn tick(&mut self) -> io::Result<()> {
        if !self.block.is_empty() && self.last_block.elapsed() >= BLOCK_EVERY {
            self.write_block()?;
        }
        Ok(())
    }

    /// Write the end frame and everything pending.
    pub fn finish(mut self, end: End) -> io::Result<()> {
        let mut bytes = end.lost_events.to_le_bytes().to_vec();
        bytes.extend_from_slice(&end.exit_status.unwrap_or(-1).to_le_bytes());
        self.frame(frame::END, &bytes)?;
        self.write_block()?;
        self.out.flush()
    }

    fn write_block(&mut self) -> io::Result<()> {
        self.last_block = Instant::now();
        if self.block.is_empty() {
            return Ok(());
        }
        let mut enc = DeflateEncoder::new(Vec::new(), Compression::fast());
        enc.write_all(&self.block)?;
        let payload = enc.finish()?;
        self.block.clear();
        self.out.write_all(BLOCK_MAGIC)?;
        self.out.write_all(&(payload.len() as u32).to_le_bytes())?;
        self.out
            .write_all(&crc32fast::hash(&payload).to_le_bytes())?;
        self.out.write_all(&payload)?;
        // Each block reaches the file at once: a killed tracer loses at most the block
        // being gathered.
        self.out.flush()
    }
}

/// Run through sudo, the recording belongs to the user who asked for it, not root.
fn chown_to_sudo_user(path: &Path) {
    let id = |var: &str| std::env::var(var).ok().and_then(|v| v.parse::<u32>().ok());
    if let (Some(uid), Some(gid)) = (id("SUDO_UID"), id("SUDO_GID")) {
        // Failing to hand the file over is not worth failing the recording for.
        let _ = std::os::unix::fs::chown(path, Some(uid), Some(gid));
    }
}
