//! Reading a recording, block by block, without trusting a byte of it: any damage ends
//! the readable prefix with an error that says where, never a panic.

use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::DeflateDecoder;
use tracer_common::RawEvent;

use super::{
    frame, old_event, End, Header, BLOCK_MAGIC, FORMAT_VERSION, MAGIC, MAX_BLOCK, MAX_HEADER,
};
use crate::decode::events::AllocBatch;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a gctrace-bpf recording")]
    NotARecording { path: PathBuf },
    #[error("{path} was written by a newer gctrace-bpf (format {version}; this one reads {FORMAT_VERSION})")]
    NewerFormat { path: PathBuf, version: u32 },
    #[error("{path}: the header is damaged ({what})")]
    BadHeader { path: PathBuf, what: String },
}

/// One item of a recording. Raw events dominate recordings and stay unboxed.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    Raw(RawEvent),
    Allocs(AllocBatch),
    End(End),
}

/// A recording read into memory: its header, its items, and whether it was cut short.
pub struct Reader {
    pub header: Header,
    pub items: Vec<Item>,
    /// Why reading stopped before the end frame, if it did (the items are the intact
    /// prefix).
    pub damage: Option<String>,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_le_bytes)
}

impl Reader {
    pub fn open(path: &Path) -> Result<Reader, ReadError> {
        let data = std::fs::read(path).map_err(|source| ReadError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Reader::parse(&data, path)
    }

    pub fn parse(data: &[u8], path: &Path) -> Result<Reader, ReadError> {
        let path_buf = || path.to_path_buf();
        if data.get(..MAGIC.len()) != Some(&MAGIC[..]) {
            return Err(ReadError::NotARecording { path: path_buf() });
        }
        let bad = |what: &str| ReadError::BadHeader {
            path: path_buf(),
            what: what.to_string(),
        };
        let version = u32_at(data, 8).ok_or_else(|| bad("cut before its version"))?;
        if version > FORMAT_VERSION {
            return Err(ReadError::NewerFormat {
                path: path_buf(),
                version,
            });
        }
        if version == 0 {
            return Err(bad("version 0"));
        }
        let len = u32_at(data, 12).ok_or_else(|| bad("cut before its length"))?;
        if len > MAX_HEADER {
            return Err(bad("implausible length"));
        }
        let start = 16usize;
        let end = start + len as usize;
        let header_bytes = data.get(start..end).ok_or_else(|| bad("cut short"))?;
        let header: Header =
            serde_json::from_slice(header_bytes).map_err(|e| bad(&e.to_string()))?;

        let mut items = Vec::new();
        let mut pos = end;
        let mut blocks = 0usize;
        let mut damage = None;
        let mut ended = false;
        while pos < data.len() && !ended {
            match read_block(data, pos) {
                Ok((payload, next)) => {
                    if let Err(what) = parse_frames(&payload, &mut items, &mut ended) {
                        damage = Some(format!("block {} is damaged ({what})", blocks + 1));
                        break;
                    }
                    blocks += 1;
                    pos = next;
                }
                Err(what) => {
                    damage = Some(format!("cut after {blocks} intact blocks ({what})"));
                    break;
                }
            }
        }
        if damage.is_none() && !ended {
            damage = Some(format!(
                "cut after {blocks} intact blocks (no end mark: the tracer was stopped abruptly)"
            ));
        }
        Ok(Reader {
            header,
            items,
            damage,
        })
    }
}

/// The decompressed payload of the block at `pos`, and where the next block starts.
fn read_block(data: &[u8], pos: usize) -> Result<(Vec<u8>, usize), String> {
    if data.get(pos..pos + 4) != Some(&BLOCK_MAGIC[..]) {
        return Err("no block mark".into());
    }
    let len = u32_at(data, pos + 4).ok_or("block length missing")?;
    if len > MAX_BLOCK {
        return Err("implausible block length".into());
    }
    let crc = u32_at(data, pos + 8).ok_or("checksum missing")?;
    let start = pos + 12;
    let payload = data
        .get(start..start + len as usize)
        .ok_or("block cut short")?;
    if crc32fast::hash(payload) != crc {
        return Err("checksum mismatch".into());
    }
    let mut out = Vec::new();
    DeflateDecoder::new(payload)
        .take(u64::from(MAX_BLOCK))
        .read_to_end(&mut out)
        .map_err(|e| format!("cannot decompress: {e}"))?;
    Ok((out, start + len as usize))
}

fn parse_frames(payload: &[u8], items: &mut Vec<Item>, ended: &mut bool) -> Result<(), String> {
    let mut pos = 0;
    let mut parsed = Vec::new();
    while pos < payload.len() {
        let kind = payload[pos];
        let len = u32_at(payload, pos + 1).ok_or("frame length missing")? as usize;
        let body = payload
            .get(pos + 5..pos + 5 + len)
            .ok_or("frame cut short")?;
        pos += 5 + len;
        match kind {
            frame::RAW_EVENT => {
                // Formats 1–3 wrote the 32-slot event; 4 the 64-slot one. The size says
                // which, whatever the file's version.
                let ev = if body.len() == size_of::<RawEvent>() {
                    RawEvent::from_bytes(body)
                        .ok_or("raw event of the wrong size")?
                        .into_owned()
                } else {
                    old_event::widen(body).ok_or("raw event of the wrong size")?
                };
                parsed.push(Item::Raw(ev));
            }
            frame::ALLOC_BATCH => {
                let b: AllocBatch =
                    serde_json::from_slice(body).map_err(|e| format!("allocation batch: {e}"))?;
                parsed.push(Item::Allocs(b));
            }
            frame::END => {
                let lost = body
                    .get(..8)
                    .and_then(|s| s.try_into().ok())
                    .map(u64::from_le_bytes)
                    .ok_or("end frame cut short")?;
                let status = body
                    .get(8..12)
                    .and_then(|s| s.try_into().ok())
                    .map(i32::from_le_bytes)
                    .ok_or("end frame cut short")?;
                parsed.push(Item::End(End {
                    lost_events: lost,
                    exit_status: (status >= 0).then_some(status),
                }));
                *ended = true;
            }
            other => return Err(format!("unknown frame kind {other}")),
        }
    }
    // Only a block whose every frame is sound contributes.
    items.extend(parsed);
    Ok(())
}
