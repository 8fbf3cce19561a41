//! Runtime globals and struct offsets recovered from the binary's own code, for
//! binaries without `.symtab` or DWARF: the instructions that name a global or a field
//! (gctrace's printing code, the GC's work accounting, the pacer) are anchors that
//! locate it, each checked against the others.
//!
//! - [`instructions`]: a function's decoded instructions, the input of every search;
//! - [`receivers`]: the addresses passed as the receiver of a method;
//! - [`print_anchors`], [`work_anchors`], [`pacer_anchors`]: fields pinned by the code
//!   that prints, counts and paces each GC cycle;
//! - [`globals`] (and [`globals_arm64`]): where each runtime global lives, by vote;
//! - [`derive`]: offsets derived from the anchors, confirmed against the table's layouts.

pub(crate) mod derive;
pub mod globals;
pub(crate) mod globals_arm64;
pub(crate) mod instructions;
pub(crate) mod pacer_anchors;
pub(crate) mod print_anchors;
pub(crate) mod receivers;
pub(crate) mod work_anchors;
