//! Colour maps shared by the PNG heatmaps and the HTML report.

/// Sequential map for values in `[0, 1]`: near-white to dark red (RGB).
pub fn reds(t: f32) -> (u8, u8, u8) {
    let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
    let mix = |a: f32, b: f32| (a + (b - a) * t).round() as u8;
    (mix(255.0, 103.0), mix(245.0, 0.0), mix(240.0, 13.0))
}

/// Diverging map for values in `[-1, 1]`: blue (negative), white (0), red (positive) (RGB).
pub fn blue_white_red(t: f32) -> (u8, u8, u8) {
    let t = if t.is_nan() { 0.0 } else { t.clamp(-1.0, 1.0) };
    let fade = |full: f32| (255.0 + (full - 255.0) * t.abs()).round() as u8;
    if t >= 0.0 {
        (fade(178.0), fade(24.0), fade(43.0))
    } else {
        (fade(33.0), fade(102.0), fade(172.0))
    }
}

/// `#rrggbb`.
pub fn hex((r, g, b): (u8, u8, u8)) -> String {
    format!("#{r:02x}{g:02x}{b:02x}")
}
