//! The memory budget: a model or a batch whose memory would exceed it is refused with an error
//! naming the size, before anything is allocated. Without it a 200-byte `config.json` asking
//! for `num_layers: 1000000` makes the allocator abort the process (or the kernel's OOM killer
//! end it) after minutes of work.
//!
//! The limit is, by default, the memory available when first checked (`MemAvailable` in
//! `/proc/meminfo`, and the address-space limit `ulimit -v` when lower), read once per process:
//! every forward pass is checked, and must not read `/proc` each time. [`set_memory_limit`]
//! overrides it (`kiln --memory-limit`). Where neither can be read, nothing is refused.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{KilnError, Result};

/// `u64::MAX`: the default (what the machine has available).
const AUTO: u64 = u64::MAX;
/// `0`: no limit.
const UNLIMITED: u64 = 0;

static LIMIT: AtomicU64 = AtomicU64::new(AUTO);

/// The budget kiln checks models and batches against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryLimit {
    /// What the machine has available when first checked (the default).
    Available,
    /// A fixed number of bytes.
    Bytes(u64),
    /// Never refuse.
    Unlimited,
}

impl std::str::FromStr for MemoryLimit {
    type Err = String;

    /// `auto`, `none`, or a size: bytes, or a number with `K`, `M`, `G` or `T` (powers of 1024;
    /// `GiB`, `GB` and `g` are read the same).
    fn from_str(text: &str) -> std::result::Result<Self, Self::Err> {
        let trimmed = text.trim();
        match trimmed.to_ascii_lowercase().as_str() {
            "auto" => return Ok(Self::Available),
            "none" | "unlimited" => return Ok(Self::Unlimited),
            _ => {}
        }
        let lower = trimmed.to_ascii_lowercase();
        let digits_end = lower
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(lower.len());
        let (number, unit) = lower.split_at(digits_end);
        let scale: u64 = match unit.trim().trim_end_matches("ib").trim_end_matches('b') {
            "" => 1,
            "k" => 1 << 10,
            "m" => 1 << 20,
            "g" => 1 << 30,
            "t" => 1 << 40,
            _ => {
                return Err(format!(
                    "`{text}`: expected auto, none, or a size such as 512M or 8G"
                ))
            }
        };
        let value: f64 = number
            .parse()
            .map_err(|_| format!("`{text}`: expected auto, none, or a size such as 512M or 8G"))?;
        let bytes = value * scale as f64;
        if !(bytes >= 1.0 && bytes < u64::MAX as f64) {
            return Err(format!("`{text}`: a size must be at least 1 byte"));
        }
        Ok(Self::Bytes(bytes as u64))
    }
}

/// Sets the budget for this process.
pub fn set_memory_limit(limit: MemoryLimit) {
    let raw = match limit {
        MemoryLimit::Available => AUTO,
        MemoryLimit::Unlimited => UNLIMITED,
        MemoryLimit::Bytes(b) => b.clamp(1, AUTO - 1),
    };
    LIMIT.store(raw, Ordering::Relaxed);
}

/// The budget in bytes now (`None`: unlimited, or not readable on this system).
pub fn memory_limit() -> Option<u64> {
    match LIMIT.load(Ordering::Relaxed) {
        UNLIMITED => None,
        AUTO => {
            static AVAILABLE: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
            *AVAILABLE.get_or_init(available_memory)
        }
        bytes => Some(bytes),
    }
}

/// Memory this process may still take: `MemAvailable`, or the address-space limit when lower.
fn available_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok();
    let available = meminfo.as_deref().and_then(|text| {
        text.lines()
            .find_map(|l| l.strip_prefix("MemAvailable:"))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map(|kb| kb * 1024)
    });
    let address_space = address_space_limit();
    match (available, address_space) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(target_os = "linux")]
fn address_space_limit() -> Option<u64> {
    // `Max address space  <soft> <hard> bytes`, or `unlimited`.
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max address space"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(not(target_os = "linux"))]
fn address_space_limit() -> Option<u64> {
    None
}

/// `Ok` if `bytes` fit the budget, else [`KilnError::TooLarge`] naming `what` and both sizes.
pub fn check_fits(what: &str, bytes: u128) -> Result<()> {
    match memory_limit() {
        Some(limit) if bytes > limit as u128 => Err(KilnError::TooLarge {
            what: what.to_string(),
            bytes,
            limit,
        }),
        _ => Ok(()),
    }
}

/// `1234567890` -> `1.1 GiB`.
pub fn human_bytes(bytes: u128) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!("auto".parse(), Ok(MemoryLimit::Available));
        assert_eq!("none".parse(), Ok(MemoryLimit::Unlimited));
        assert_eq!("512".parse(), Ok(MemoryLimit::Bytes(512)));
        assert_eq!("8G".parse(), Ok(MemoryLimit::Bytes(8 << 30)));
        assert_eq!("1.5GiB".parse(), Ok(MemoryLimit::Bytes(3 << 29)));
        assert_eq!("64mb".parse(), Ok(MemoryLimit::Bytes(64 << 20)));
        for bad in ["", "-1", "0", "8X", "G", "nan"] {
            assert!(bad.parse::<MemoryLimit>().is_err(), "{bad}");
        }
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_machine_has_a_budget() {
        let available = available_memory().expect("/proc/meminfo is readable on Linux");
        assert!(available > 1 << 20);
        assert!(check_fits("a terabyte-sized thing", 1 << 60).is_err());
    }
}
