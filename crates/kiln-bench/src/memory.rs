//! Resident-memory measurements from `/proc/self` (Linux; `None` elsewhere).

/// `(VmHWM, VmRSS)` in bytes.
fn read_status() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}

/// Resets the peak-RSS mark (`echo 5 > /proc/self/clear_refs`).
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Current resident memory in bytes.
pub fn current_rss() -> Option<u64> {
    read_status().map(|(_, rss)| rss)
}

/// Runs `f` and returns (peak RSS during it, peak minus RSS before it), in bytes.
pub fn peak_during(f: impl FnOnce()) -> Option<(u64, u64)> {
    if !reset_peak() {
        f();
        return None;
    }
    let (_, before) = read_status()?;
    f();
    let (peak, _) = read_status()?;
    Some((peak, peak.saturating_sub(before)))
}
