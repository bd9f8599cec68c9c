//! Value parsers that bound every numeric flag at parse time: a count flag cannot ask for
//! unbounded work or memory, and a float flag is finite and in its range. A bad value is a
//! usage error (exit 2) naming the flag and the range. `docs/cli.md` lists the ranges.

/// Largest batch (sequences per forward pass).
pub const MAX_BATCH: usize = 65_536;
/// Longest sequence in tokens.
pub const MAX_SEQ: usize = 1 << 20;
/// Most repetitions of a timed run.
pub const MAX_REPEAT: usize = 10_000;
/// Most training or distillation steps.
pub const MAX_STEPS: usize = 10_000_000;
/// Most augmented copies of one line (`augment --n`, `train-classifier --views`).
pub const MAX_COPIES: usize = 1_000;
/// Most Integrated Gradients steps (each is a forward and a backward pass).
pub const MAX_IG_STEPS: usize = 1_024;
/// Widest layer (d_model, feed-forward width, classifier hidden width).
pub const MAX_WIDTH: usize = 65_536;
/// Most layers of a benchmark model.
pub const MAX_LAYERS: usize = 1_024;

/// An integer in `LO..=HI`.
pub fn count<const LO: usize, const HI: usize>(text: &str) -> Result<usize, String> {
    let value: usize = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a whole number (expected {LO}..={HI})"))?;
    if !(LO..=HI).contains(&value) {
        return Err(format!("{value} must be at least {LO} and at most {HI}"));
    }
    Ok(value)
}

fn float(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number"))?;
    if !value.is_finite() {
        return Err(format!("{text} must be a finite number"));
    }
    Ok(value)
}

/// A finite number in `[0, 1]`.
pub fn unit_interval(text: &str) -> Result<f64, String> {
    let value = float(text)?;
    if !(0.0..=1.0).contains(&value) {
        return Err(format!("{value} must be in [0, 1]"));
    }
    Ok(value)
}

/// A finite number in `[0, 1)`.
pub fn below_one(text: &str) -> Result<f64, String> {
    let value = float(text)?;
    if !(0.0..1.0).contains(&value) {
        return Err(format!("{value} must be in [0, 1)"));
    }
    Ok(value)
}

/// A finite number above 0.
pub fn positive(text: &str) -> Result<f64, String> {
    let value = float(text)?;
    if value <= 0.0 {
        return Err(format!("{value} must be above 0"));
    }
    Ok(value)
}

/// A finite number, 0 or above.
pub fn non_negative(text: &str) -> Result<f64, String> {
    let value = float(text)?;
    if value < 0.0 {
        return Err(format!("{value} must be 0 or above"));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_hold() {
        assert_eq!(count::<1, 10>("10"), Ok(10));
        assert!(count::<1, 10>("0").unwrap_err().contains("at least 1"));
        assert!(count::<1, 10>("11").is_err());
        assert!(count::<1, 10>("-1").is_err());
        assert!(count::<1, 10>("1e9").is_err());
        assert_eq!(unit_interval("1"), Ok(1.0));
        assert!(below_one("1").is_err());
        for bad in ["NaN", "inf", "-inf", "x"] {
            assert!(positive(bad).is_err(), "{bad}");
            assert!(non_negative(bad).is_err(), "{bad}");
        }
        assert!(positive("0").is_err());
        assert_eq!(non_negative("0"), Ok(0.0));
        assert!(unit_interval("-1").unwrap_err().contains("[0, 1]"));
    }
}
