//! PNG heatmaps drawn with `plotters`: an `S x S` matrix (attention, rollout) with the tokens
//! on both axes, or a strip of per-token scores. Labels use the DejaVu Sans font embedded in
//! the binary, so a heatmap renders the same on any machine.

use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontTransform;

use crate::attention::SquareMatrix;
use crate::colors::{blue_white_red, reds};
use crate::error::{ExplainError, Result};

/// Default size of a matrix heatmap (attention, rollout), pixels.
pub const MATRIX_SIZE: (u32, u32) = (800, 800);
/// Default size of a token-score strip (gradient attributions), pixels.
pub const SCORES_SIZE: (u32, u32) = (1000, 300);

const FONT: &str = "sans-serif";

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bytes are a well-formed TrueType font shipped by the `dejavu` crate.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
    });
}

fn draw_error(e: impl std::fmt::Display) -> ExplainError {
    ExplainError::Invalid(format!("drawing the heatmap: {e}"))
}

/// Label width estimate in pixels (DejaVu Sans averages ~0.6 em per character).
fn label_px(labels: &[String], font_px: u32) -> u32 {
    let chars = labels.iter().map(|l| l.chars().count()).max().unwrap_or(1) as f32;
    (chars * font_px as f32 * 0.62) as u32 + 8
}

fn rgb((r, g, b): (u8, u8, u8)) -> RGBColor {
    RGBColor(r, g, b)
}

fn encode_png(buffer: Vec<u8>, (width, height): (u32, u32)) -> Result<Vec<u8>> {
    let image = image::RgbImage::from_raw(width, height, buffer)
        .ok_or_else(|| draw_error("buffer size does not match the image size"))?;
    let mut bytes = Vec::new();
    image
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .map_err(draw_error)?;
    Ok(bytes)
}

/// Fails unless both sides are 64..=8192 pixels.
pub fn check_size((width, height): (u32, u32)) -> Result<()> {
    if !(64..=8192).contains(&width) || !(64..=8192).contains(&height) {
        return Err(ExplainError::Invalid(format!(
            "heatmap size {width}x{height} must be between 64 and 8192 pixels each way"
        )));
    }
    Ok(())
}

fn draw_title(area: &DrawingArea<BitMapBackend<'_>, Shift>, title: &str) -> Result<()> {
    area.draw(&Text::new(
        title.to_string(),
        (10, 8),
        (FONT, 18).into_font().color(&BLACK),
    ))
    .map_err(draw_error)
}

/// A PNG of `matrix` (rows: queries, columns: keys) with `labels` on both axes, coloured from
/// 0 (white) to the matrix's maximum (dark red).
pub fn matrix_png(
    matrix: &SquareMatrix,
    labels: &[String],
    title: &str,
    size: (u32, u32),
) -> Result<Vec<u8>> {
    check_size(size)?;
    if labels.len() != matrix.n {
        return Err(ExplainError::Invalid(format!(
            "{} labels for a {}x{} matrix",
            labels.len(),
            matrix.n,
            matrix.n
        )));
    }
    register_font();
    let (width, height) = size;
    let mut buffer = vec![255u8; (width * height * 3) as usize];
    {
        let area = BitMapBackend::with_buffer(&mut buffer, size).into_drawing_area();
        area.fill(&WHITE).map_err(draw_error)?;
        let n = matrix.n.max(1) as u32;
        let top = 40;
        let font_px = ((height.min(width) - top) / (n + 6)).clamp(8, 16);
        let margin = label_px(labels, font_px).min(width / 3);
        let cell = ((width - margin - 20) / n)
            .min((height - top - margin - 10) / n)
            .max(1);
        let max = matrix
            .data
            .iter()
            .cloned()
            .fold(0.0f32, f32::max)
            .max(1e-12);
        draw_title(&area, &format!("{title} (max {max:.3})"))?;
        let font = (FONT, font_px as f64).into_font().color(&BLACK);
        for i in 0..n {
            let y = top + i * cell;
            for j in 0..n {
                let x = margin + j * cell;
                let v = matrix.get(i as usize, j as usize);
                area.draw(&Rectangle::new(
                    [(x as i32, y as i32), ((x + cell) as i32, (y + cell) as i32)],
                    rgb(reds(v / max)).filled(),
                ))
                .map_err(draw_error)?;
            }
            // Row label, right-aligned against the grid.
            area.draw(&Text::new(
                labels[i as usize].clone(),
                ((margin - 4) as i32, (y + cell / 2) as i32),
                font.clone().pos(Pos::new(HPos::Right, VPos::Center)),
            ))
            .map_err(draw_error)?;
            // Column label, written downwards under the grid.
            area.draw(&Text::new(
                labels[i as usize].clone(),
                (
                    (margin + i * cell + cell / 2) as i32 + font_px as i32 / 2,
                    (top + n * cell + 4) as i32,
                ),
                font.clone().transform(FontTransform::Rotate90),
            ))
            .map_err(draw_error)?;
        }
        area.present().map_err(draw_error)?;
    }
    encode_png(buffer, size)
}

/// A PNG strip of per-token `scores`, one cell per token coloured blue (negative) to red
/// (positive) relative to the largest magnitude, with the tokens under the cells.
pub fn scores_png(
    labels: &[String],
    scores: &[f32],
    title: &str,
    size: (u32, u32),
) -> Result<Vec<u8>> {
    check_size(size)?;
    if labels.len() != scores.len() || labels.is_empty() {
        return Err(ExplainError::Invalid(format!(
            "{} labels for {} scores",
            labels.len(),
            scores.len()
        )));
    }
    register_font();
    let (width, height) = size;
    let mut buffer = vec![255u8; (width * height * 3) as usize];
    {
        let area = BitMapBackend::with_buffer(&mut buffer, size).into_drawing_area();
        area.fill(&WHITE).map_err(draw_error)?;
        let n = scores.len() as u32;
        let top = 40;
        let cell = ((width - 20) / n).max(1);
        let font_px = (cell / 2).clamp(8, 16);
        let strip = (height / 3).clamp(20, 120);
        let max = scores.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-12);
        draw_title(&area, &format!("{title} (max |score| {max:.3})"))?;
        let font = (FONT, font_px as f64).into_font().color(&BLACK);
        for (i, (label, &score)) in labels.iter().zip(scores).enumerate() {
            let x = 10 + i as u32 * cell;
            area.draw(&Rectangle::new(
                [
                    (x as i32, top as i32),
                    ((x + cell) as i32, (top + strip) as i32),
                ],
                rgb(blue_white_red(score / max)).filled(),
            ))
            .map_err(draw_error)?;
            area.draw(&Rectangle::new(
                [
                    (x as i32, top as i32),
                    ((x + cell) as i32, (top + strip) as i32),
                ],
                RGBColor(200, 200, 200).stroke_width(1),
            ))
            .map_err(draw_error)?;
            // The value inside the cell when it fits.
            if cell >= 6 * font_px / 2 {
                area.draw(&Text::new(
                    format!("{score:.2}"),
                    ((x + cell / 2) as i32, (top + strip / 2) as i32),
                    font.clone().pos(Pos::new(HPos::Center, VPos::Center)),
                ))
                .map_err(draw_error)?;
            }
            area.draw(&Text::new(
                label.clone(),
                (
                    (x + cell / 2) as i32 + font_px as i32 / 2,
                    (top + strip + 4) as i32,
                ),
                font.clone().transform(FontTransform::Rotate90),
            ))
            .map_err(draw_error)?;
        }
        area.present().map_err(draw_error)?;
    }
    encode_png(buffer, size)
}
