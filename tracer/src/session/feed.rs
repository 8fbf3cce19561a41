//! Where a traced process's raw events come from: its own probes and ring buffer (one
//! process: `--pid`, a command, or `--exe`/`--all` with allocation probes), or the probes
//! shared by every process of its binary, whose ring [`super::shared`] reads and splits
//! by pid into one channel per process.

use std::{
    borrow::Cow,
    os::fd::AsRawFd,
    sync::{Arc, Mutex},
};

use anyhow::{anyhow, Context, Result};
use aya::maps::{MapData, RingBuf};
use tokio::{
    io::unix::AsyncFd,
    sync::{mpsc, oneshot},
};
use tracer_common::RawEvent;

use super::pipeline::Pipeline;
use crate::probes::Probes;

/// What a process's loop is told to the group of its binary.
pub(super) enum GroupMsg {
    /// Set this process up now, while it runs (found at its exec, or by a scan).
    Register(u32),
    /// The process ended: route everything the ring holds now, then reply.
    Ended {
        pid: u32,
        reply: oneshot::Sender<()>,
    },
}

/// One process's share of the probes of its binary.
pub(super) struct Feed {
    pub(super) pid: u32,
    pub(super) events: mpsc::UnboundedReceiver<RawEvent>,
    pub(super) group: mpsc::UnboundedSender<GroupMsg>,
    /// The group's probes, for this process's count of lost events.
    pub(super) probes: Arc<Mutex<Probes>>,
}

impl Feed {
    /// Events of this process lost so far because the shared ring was full.
    fn lost(&self) -> Result<u64> {
        let probes = self
            .probes
            .lock()
            .map_err(|_| anyhow!("the probes of pid {}'s binary are unusable", self.pid))?;
        Ok(probes.lost_of(self.pid)?)
    }

    /// Everything already delivered to this process's channel, into the pipeline.
    fn drain(&mut self, pipe: &mut Pipeline) -> Result<usize> {
        let mut n = 0;
        while let Ok(raw) = self.events.try_recv() {
            pipe.raw_deferred(&raw)?;
            n += 1;
        }
        pipe.write_pending()?;
        Ok(n)
    }
}

/// A process's event source, as its loop uses it.
pub(super) enum Events {
    Own {
        probes: Box<Probes>,
        ring: AsyncFd<RingBuf<MapData>>,
    },
    Shared(Feed),
}

/// Before attaching: own probes, or a share of a binary's.
pub(super) enum Source {
    Own(Probes),
    Shared(Feed),
}

impl Events {
    pub(super) fn open(source: Source) -> Result<Events> {
        Ok(match source {
            Source::Own(mut probes) => {
                let ring = probes.take_events()?;
                let ring = watch_fd(ring).context("cannot poll the ring buffer")?;
                Events::Own {
                    probes: Box::new(probes),
                    ring,
                }
            }
            Source::Shared(feed) => Events::Shared(feed),
        })
    }

    /// Waits for events and moves them into the pipeline.
    pub(super) async fn next_batch(&mut self, pipe: &mut Pipeline) -> Result<()> {
        match self {
            Events::Own { ring, .. } => {
                let mut guard = ring.readable_mut().await?;
                drain_ring(pipe, guard.get_inner_mut())?;
                guard.clear_ready();
            }
            Events::Shared(feed) => match feed.events.recv().await {
                Some(raw) => {
                    pipe.raw_deferred(&raw)?;
                    feed.drain(pipe)?;
                }
                // The group is gone (the run is ending): nothing more will come.
                None => std::future::pending().await,
            },
        }
        Ok(())
    }

    /// Everything delivered so far, into the pipeline.
    pub(super) fn drain(&mut self, pipe: &mut Pipeline) -> Result<usize> {
        match self {
            Events::Own { ring, .. } => drain_ring(pipe, ring.get_mut()),
            Events::Shared(feed) => feed.drain(pipe),
        }
    }

    /// Events lost so far in the kernel (ring full).
    pub(super) fn lost(&self) -> Result<u64> {
        match self {
            Events::Own { probes, .. } => Ok(probes.lost()?),
            Events::Shared(feed) => feed.lost(),
        }
    }

    /// The process's own probes (allocation probes need them).
    pub(super) fn own_probes(&mut self) -> Option<&mut Probes> {
        match self {
            Events::Own { probes, .. } => Some(probes),
            Events::Shared(_) => None,
        }
    }

    /// The end: no more events for this process, every one it made delivered. Own
    /// probes are detached (their maps stay readable); shared ones stay for the other
    /// processes of the binary, whose group first routes all the ring holds.
    /// Returns the kernel's count of this process's lost events.
    pub(super) async fn finish(&mut self, pipe: &mut Pipeline) -> Result<u64> {
        match self {
            Events::Own { probes, ring } => {
                let lost = probes.counters()?.lost;
                probes.detach();
                drain_ring(pipe, ring.get_mut())?;
                Ok(lost)
            }
            Events::Shared(feed) => {
                let (reply, done) = oneshot::channel();
                let asked = feed.group.send(GroupMsg::Ended {
                    pid: feed.pid,
                    reply,
                });
                if asked.is_ok() {
                    // An error: the group ended first, having routed all it had.
                    let _ = done.await;
                }
                feed.drain(pipe)?;
                feed.lost()
            }
        }
    }
}

/// Move every raw event the kernel has delivered into the pipeline.
fn drain_ring(pipe: &mut Pipeline, ring: &mut RingBuf<MapData>) -> Result<usize> {
    let mut n = 0;
    while let Some(item) = ring.next() {
        n += 1;
        // In place: the kernel pads records to 8 bytes, and the slot is ours until `item`
        // is dropped, after the pipeline is done with the event.
        if let Some(raw) = RawEvent::from_bytes(&item) {
            pipe.raw_deferred(&raw)?;
        }
        drop(item);
    }
    pipe.write_pending()?;
    Ok(n)
}

/// Every raw event the kernel has delivered to `ring`, copied out (shared rings: split
/// by pid before decoding).
pub(super) fn take_ring(ring: &mut RingBuf<MapData>, mut each: impl FnMut(RawEvent)) -> usize {
    let mut n = 0;
    while let Some(item) = ring.next() {
        let Some(raw) = RawEvent::from_bytes(&item).map(Cow::into_owned) else {
            continue;
        };
        drop(item);
        each(raw);
        n += 1;
    }
    n
}

/// Register a descriptor we own with the event loop, for readability.
pub(super) fn watch_fd<T: AsRawFd>(inner: T) -> std::io::Result<AsyncFd<T>> {
    // SAFETY: `inner` owns its descriptor (a ring-buffer map or a pidfd) and keeps it open
    // and unchanged until the AsyncFd, which owns `inner`, is dropped.
    unsafe { AsyncFd::register_with_interest(inner, tokio::io::Interest::READABLE) }
        .map_err(|e| std::io::Error::other(e.to_string()))
}
