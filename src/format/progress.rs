//! Progress reporting from the library to whoever draws it (the CLI draws
//! indicatif bars on a terminal; tests and `--json` draw nothing).

pub trait Progress: Sync {
    /// A new phase of `total` bytes begins.
    fn begin(&self, _phase: &str, _total: u64) {}
    /// `n` more bytes done.
    fn advance(&self, _n: u64) {}
    /// The phase is over.
    fn finish(&self) {}
}

/// Draws nothing.
pub struct Silent;
impl Progress for Silent {}

/// `1/2 packing` when a command runs `steps` phases, else just the phase.
pub fn label(phase: &str, step: usize, steps: usize) -> String {
    if steps > 1 && step <= steps {
        format!("{step}/{steps} {phase}")
    } else {
        phase.to_string()
    }
}

/// Time left, once there is enough to go on: at least 3 s elapsed and 2 %
/// done. Earlier estimates swing wildly (a first "45m" for a one-minute job),
/// so none is shown.
pub fn eta(elapsed: std::time::Duration, done: u64, total: u64) -> Option<std::time::Duration> {
    if total == 0 || done == 0 || done >= total || elapsed.as_secs_f64() < 3.0 {
        return None;
    }
    if (done as f64) < total as f64 * 0.02 {
        return None;
    }
    let rate = done as f64 / elapsed.as_secs_f64();
    Some(std::time::Duration::from_secs_f64(
        (total - done) as f64 / rate,
    ))
}

/// `45s`, `3m05s`, `1h02m`.
pub fn duration(d: std::time::Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    }
}

/// One progress line for a log (stderr not a terminal):
/// `1/2 packing 45% 120 MiB of 270 MiB, 30.0 MiB/s, 5s left`.
pub fn line(label: &str, done: u64, total: u64, elapsed: std::time::Duration) -> String {
    let pct = if total == 0 {
        100
    } else {
        (done.min(total) as u128 * 100 / total as u128) as u64
    };
    let mut s = format!("{label} {pct}% {} of {}", size(done), size(total));
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        s.push_str(&format!(", {}/s", size((done as f64 / secs) as u64)));
    }
    if let Some(left) = eta(elapsed, done, total) {
        s.push_str(&format!(", {} left", duration(left)));
    }
    s
}

/// A byte count in binary units for people: `812 B`, `1.50 KiB`, `43.2 MiB`.
pub fn size(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if v < 10.0 {
        format!("{v:.2} {}", UNITS[unit])
    } else if v < 100.0 {
        format!("{v:.1} {}", UNITS[unit])
    } else {
        format!("{v:.0} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn labels_steps() {
        assert_eq!(label("packing", 1, 2), "1/2 packing");
        assert_eq!(label("writing tar", 2, 2), "2/2 writing tar");
        assert_eq!(label("verifying", 1, 1), "verifying");
        assert_eq!(label("extra", 3, 2), "extra");
    }

    #[test]
    fn no_early_eta() {
        // A fast first chunk after 0.2 s must not give an estimate.
        assert_eq!(eta(Duration::from_millis(200), 1 << 20, 1 << 30), None);
        // 1 % after 10 s: still too little to go on.
        assert_eq!(eta(Duration::from_secs(10), 1, 100), None);
        // Half done after 30 s: 30 s left.
        assert_eq!(
            eta(Duration::from_secs(30), 50, 100),
            Some(Duration::from_secs(30))
        );
        assert_eq!(eta(Duration::from_secs(30), 100, 100), None);
    }

    #[test]
    fn log_lines() {
        assert_eq!(duration(Duration::from_secs(185)), "3m05s");
        assert_eq!(duration(Duration::from_secs(3720)), "1h02m");
        assert_eq!(
            line("1/2 packing", 50 << 20, 100 << 20, Duration::from_secs(10)),
            "1/2 packing 50% 50.0 MiB of 100 MiB, 5.00 MiB/s, 10s left"
        );
    }
}
