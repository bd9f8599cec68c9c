//! `kiln augment --method back-translate`: K back-translated variants per line through
//! Apertium, read and written in batches of `--batch` lines (one Apertium process per batch
//! and direction), so output streams and memory stays flat.

use std::time::Instant;

use anyhow::{Context, Result};
use kiln_augment::back_translation::BackTranslation;
use kiln_augment::eda::EdaConfig;
use kiln_augment::wordnet::WordNet;

use super::{close_output, open_output, pivot_translator, AugmentArgs, Output, SOURCE};
use crate::common::{for_each_line, progress_bar, wordnet_dir};

/// What the summary line reports.
#[derive(Default)]
struct Totals {
    lines: usize,
    round_trips: usize,
    unchanged: usize,
}

pub(super) fn run(args: &AugmentArgs, config: &EdaConfig) -> Result<()> {
    // Everything that can be missing is checked before the output is opened.
    let (pivots, apertium) = pivot_translator(&args.pivot, args.batch)?;
    let wordnet = if args.n > pivots.len() {
        let dir = wordnet_dir(args.wordnet.as_ref());
        Some(WordNet::load(&dir).with_context(|| {
            format!(
                "--n {} with {} pivot(s) adds an EDA operation to the variants beyond one per pivot; cannot load WordNet from {}",
                args.n,
                pivots.len(),
                dir.display()
            )
        })?)
    } else {
        None
    };
    let bt = BackTranslation {
        translator: &apertium,
        source: SOURCE,
        pivots: &pivots,
        eda: *config,
        wordnet: wordnet.as_ref(),
    };
    let mut out = open_output(args)?;
    let start = Instant::now();
    let bar = progress_bar(
        std::fs::metadata(&args.input).map(|m| m.len()).unwrap_or(0),
        "{bar:30} {bytes}/{total_bytes} read, eta {eta}",
    );
    let mut totals = Totals::default();
    let mut batch: Vec<String> = Vec::new();
    let mut first = 0;
    let finished = for_each_line(&args.input, |i, line, bytes| {
        bar.inc(bytes as u64);
        if batch.is_empty() {
            first = i;
        }
        batch.push(line.to_string());
        if batch.len() >= args.batch {
            write_batch(&bt, args, &mut batch, first, &mut out, &mut totals)?;
        }
        Ok(())
    })
    .and_then(|()| write_batch(&bt, args, &mut batch, first, &mut out, &mut totals));
    bar.finish_and_clear();
    if !close_output(out, finished, args)? {
        // The reader went away: no summary.
        return Ok(());
    }
    let seconds = start.elapsed().as_secs_f64();
    eprintln!(
        "kiln: back-translated {} lines through {} in {seconds:.1} s ({:.0} lines/s), {} variant{} each; {} of {} round trips came back identical to their line",
        totals.lines,
        pivots.join(", "),
        totals.lines as f64 / seconds.max(1e-9),
        args.n,
        if args.n == 1 { "" } else { "s" },
        totals.unchanged,
        totals.round_trips
    );
    Ok(())
}

/// Back-translates the lines of `batch` (the first is line `first` of the input), writes
/// their variants and empties it.
fn write_batch(
    bt: &BackTranslation<'_>,
    args: &AugmentArgs,
    batch: &mut Vec<String>,
    first: usize,
    out: &mut Output<'_>,
    totals: &mut Totals,
) -> Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let variants = bt.variants(batch, args.n, args.seed, first)?;
    for text in variants.texts.iter().flatten() {
        out.write_line(text)?;
    }
    totals.lines += batch.len();
    totals.round_trips += variants.round_trips;
    totals.unchanged += variants.unchanged;
    batch.clear();
    Ok(())
}
