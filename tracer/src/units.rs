//! How figures are written for people: short, fixed-style numbers for the TUI's narrow
//! cells (three significant digits at most, units chosen to be read at a glance), and the
//! report's fixed-precision forms with their units. One place for both, so a unit is
//! never formatted two ways by accident.

/// A duration: `850ns`, `161µs`, `1.25ms`, `35.5ms`, `1.20s`.
pub fn dur(ns: u64) -> String {
    let v = ns as f64;
    if ns < 1_000 {
        format!("{ns}ns")
    } else if ns < 1_000_000 {
        sig3(v / 1e3, "µs")
    } else if ns < 1_000_000_000 {
        sig3(v / 1e6, "ms")
    } else {
        sig3(v / 1e9, "s")
    }
}

/// A value with three significant digits (no more than two decimals).
fn sig3(v: f64, unit: &str) -> String {
    if v >= 100.0 {
        format!("{v:.0}{unit}")
    } else if v >= 10.0 {
        format!("{v:.1}{unit}")
    } else {
        format!("{v:.2}{unit}")
    }
}

/// Bytes in binary units like the runtime's own figures (gctrace's MB are MiB).
pub fn bytes(b: u64) -> String {
    let v = b as f64;
    const K: f64 = 1024.0;
    if b < 1024 {
        format!("{b}B")
    } else if v < K * K {
        sig3(v / K, "K")
    } else if v < K * K * K {
        sig3(v / (K * K), "M")
    } else {
        sig3(v / (K * K * K), "G")
    }
}

/// Seconds as `45s`, `2m`, `1m30s`, `2h05m`.
pub fn secs(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        if s.is_multiple_of(60) {
            format!("{}m", s / 60)
        } else {
            format!("{}m{:02}s", s / 60, s % 60)
        }
    } else {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    }
}

/// Milliseconds with gctrace's precision (two significant digits, like `0.15`, `1.1`).
pub fn ms(ns: u64) -> String {
    let v = ns as f64 / 1e6;
    if v >= 10.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else if v >= 0.01 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// MiB with one decimal, gctrace's heap figures.
pub fn mib(b: u64) -> String {
    let v = b as f64 / (1024.0 * 1024.0);
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// The report's milliseconds: three decimals and the unit (`0.152 ms`), `?` if unknown.
pub fn ms_unit(ns: Option<u64>) -> String {
    ns.map_or("?".into(), |n| format!("{:.3} ms", n as f64 / 1e6))
}

/// The report's MiB: one decimal and the unit (`4.0 MiB`), `?` if unknown.
pub fn mib_unit(b: Option<u64>) -> String {
    b.map_or("?".into(), |b| {
        format!("{:.1} MiB", b as f64 / (1 << 20) as f64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(dur(850), "850ns");
        assert_eq!(dur(161_521), "162µs");
        assert_eq!(dur(1_250_000), "1.25ms");
        assert_eq!(dur(35_467_749), "35.5ms");
        assert_eq!(dur(1_200_000_000), "1.20s");
        assert_eq!(bytes(512), "512B");
        assert_eq!(bytes(4 << 20), "4.00M");
        assert_eq!(secs(90.0), "1m30s");
        assert_eq!(secs(120.0), "2m");
        assert_eq!(secs(7300.0), "2h01m");
        assert_eq!(ms(151_913), "0.15");
        assert_eq!(mib(4_186_112), "4.0");
        assert_eq!(ms_unit(Some(151_913)), "0.152 ms");
        assert_eq!(ms_unit(None), "?");
        assert_eq!(mib_unit(Some(4_186_112)), "4.0 MiB");
    }
}
