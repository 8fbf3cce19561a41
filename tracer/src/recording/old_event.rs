//! The raw event as recording formats 1–3 stored it: 32 read slots and a 32-bit mask
//! (360 bytes), where today's [`RawEvent`] has 64 slots and a 64-bit mask. The head
//! (`kind` … `g`) is byte for byte the same in both, so an old event is widened from its
//! bytes rather than through a second copy of the struct kept in step by hand.

use std::borrow::Cow;
use std::mem::{offset_of, size_of};

use tracer_common::RawEvent;

/// Read slots of the old event.
const OLD_READS: usize = 32;
/// Where `reads` starts: the end of the head both layouts share.
const HEAD: usize = offset_of!(RawEvent, reads);
/// Where the old 32-bit `read_ok` and `seq` sit, after the 32 slots.
const OLD_READ_OK: usize = HEAD + 8 * OLD_READS;
const OLD_SEQ: usize = OLD_READ_OK + 4;

/// Size of a format 1–3 event frame.
pub const OLD_EVENT_BYTES: usize = OLD_SEQ + 4;

// The old layout, as `layout_is_stable` in tracer-common once pinned it.
const _: () = assert!(OLD_EVENT_BYTES == 360);
const _: () = assert!(HEAD + 8 * OLD_READS <= size_of::<RawEvent>());

/// The event of an old frame in today's layout: every field and read slot where it was,
/// the slots past 32 unread. `None` when `body` is not an old event's size.
pub fn widen(body: &[u8]) -> Option<RawEvent> {
    if body.len() != OLD_EVENT_BYTES {
        return None;
    }
    let mut now = [0u8; size_of::<RawEvent>()];
    now[..OLD_READ_OK].copy_from_slice(&body[..OLD_READ_OK]);
    let read_ok = u32::from_ne_bytes(body[OLD_READ_OK..OLD_SEQ].try_into().ok()?);
    let at = offset_of!(RawEvent, read_ok);
    now[at..at + 8].copy_from_slice(&u64::from(read_ok).to_ne_bytes());
    let at = offset_of!(RawEvent, seq);
    now[at..at + 4].copy_from_slice(&body[OLD_SEQ..OLD_EVENT_BYTES]);
    RawEvent::from_bytes(&now).map(Cow::into_owned)
}
