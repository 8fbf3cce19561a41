//! The smallest HTTP/1.1 server a Prometheus scrape needs: `GET /metrics` (or `HEAD`)
//! gets the registry, encoded in the format the `Accept` header prefers; any other path
//! is 404, any other method 405. One connection at a time, closed after its response.
//!
//! It runs on a thread of its own rather than on the session's event loop, so a slow
//! scraper never delays draining the ring buffer, and the event loop stays as it is.
//! A web framework would bring far more code than these few lines of protocol, which
//! never see a request body.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use super::{lock, Exposition, GcMetrics};

/// A request head larger than this is not a scrape.
const MAX_HEAD: usize = 16 * 1024;

/// A client that sends or reads nothing for this long is dropped, so it cannot hold
/// the one-at-a-time server for long.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Serve `listener` from a new thread. The thread lives as long as the process: the
/// metrics stay scrapable until the tracer exits.
pub(super) fn spawn(listener: TcpListener, metrics: Arc<Mutex<GcMetrics>>) -> io::Result<()> {
    thread::Builder::new()
        .name("prometheus".into())
        .spawn(move || serve(&listener, &metrics))?;
    Ok(())
}

fn serve(listener: &TcpListener, metrics: &Mutex<GcMetrics>) {
    for conn in listener.incoming() {
        match conn {
            Ok(stream) => {
                if let Err(e) = handle(stream, metrics) {
                    log::debug!("prometheus: connection: {e}");
                }
            }
            Err(e) => {
                // Out of descriptors and the like: wait rather than spin.
                log::warn!("prometheus: accept: {e}");
                thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn handle(mut stream: TcpStream, metrics: &Mutex<GcMetrics>) -> io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let head = read_head(&mut stream)?;
    let response = respond(&head, metrics);
    stream.write_all(&response)?;
    stream.flush()
}

/// The request up to the blank line after its headers (or what came before the client
/// stopped sending, or the first `MAX_HEAD` bytes).
fn read_head(stream: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 2048];
    while head.len() < MAX_HEAD && !ends_head(&head) {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Ok(head)
}

fn ends_head(head: &[u8]) -> bool {
    head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n")
}

/// The whole response (status line, headers, body) to the request head `head`.
pub(super) fn respond(head: &[u8], metrics: &Mutex<GcMetrics>) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.lines();
    let mut request = lines.next().unwrap_or("").split_whitespace();
    let (Some(method), Some(target), Some(version)) =
        (request.next(), request.next(), request.next())
    else {
        return response(400, "Bad Request", "text/plain", b"bad request\n", &[]);
    };
    if !version.starts_with("HTTP/") || !ends_head(head) {
        return response(400, "Bad Request", "text/plain", b"bad request\n", &[]);
    }
    let path = target.split('?').next().unwrap_or(target);
    if path != "/metrics" {
        return response(
            404,
            "Not Found",
            "text/plain",
            b"not found: the metrics are at /metrics\n",
            &[],
        );
    }
    if method != "GET" && method != "HEAD" {
        return response(
            405,
            "Method Not Allowed",
            "text/plain",
            b"method not allowed\n",
            &[("Allow", "GET, HEAD")],
        );
    }
    // Prometheus asks for OpenMetrics first; curl and most other clients get the
    // classic text format.
    let format = if lines.any(|l| {
        l.split_once(':').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("accept")
                && value.contains("application/openmetrics-text")
        })
    }) {
        Exposition::OpenMetrics
    } else {
        Exposition::Text
    };
    let encoded = lock(metrics).scrape(format);
    match encoded {
        Ok(body) => {
            let mut out = response(200, "OK", format.content_type(), body.as_bytes(), &[]);
            if method == "HEAD" {
                // Same headers (Content-Length included), no body.
                out.truncate(out.len() - body.len());
            }
            out
        }
        Err(_) => response(
            500,
            "Internal Server Error",
            "text/plain",
            b"cannot encode the metrics\n",
            &[],
        ),
    }
}

fn response(
    status: u16,
    reason: &str,
    content_type: &str,
    body: &[u8],
    extra: &[(&str, &str)],
) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n",
        body.len()
    );
    for (name, value) in extra {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}
