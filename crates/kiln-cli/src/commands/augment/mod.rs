//! `kiln augment`: EDA text augmentation (WordNet synonyms) or back-translation (Apertium), K
//! augmented lines per input line.

mod back_translation;

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use kiln_augment::eda::{apply, eda, EdaConfig, Operation};
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::common::{for_each_line, load_wordnet_if, progress_bar, same_file};
use crate::usage::usage;

/// `--method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AugmentMethod {
    /// Synonym replacement (WordNet), alpha_sr of the words.
    Synonym,
    /// Random insertion of synonyms (WordNet), alpha_ri of the words.
    Insert,
    /// Random swap of two words, alpha_rs of the words times.
    Swap,
    /// Random deletion, each word with probability p_rd.
    Delete,
    /// All four, evenly mixed (Wei & Zou 2019).
    Eda,
    /// Back-translation through Apertium: English -> --pivot -> English (variants beyond one
    /// per pivot add one EDA operation).
    BackTranslate,
}

/// A pivot language of back-translation: an Apertium pair with English (`--pivot`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Pivot {
    /// Spanish (apertium-eng-spa).
    Spa,
    /// Catalan (apertium-eng-cat).
    Cat,
    /// Galician (apertium-en-gl).
    Glg,
    /// Esperanto (apertium-eo-en).
    Epo,
    /// Basque (needs an English -> Basque mode; Debian's apertium-eu-en has only the reverse).
    Eus,
}

impl Pivot {
    /// Its ISO 639-3 code, as kiln-augment's Apertium takes it.
    pub fn code(self) -> &'static str {
        match self {
            Self::Spa => "spa",
            Self::Cat => "cat",
            Self::Glg => "glg",
            Self::Epo => "epo",
            Self::Eus => "eus",
        }
    }
}

/// The pivots' codes, each once; an Apertium that has both directions of every pair (checked
/// before any work, so a missing package is named at once).
pub fn pivot_translator(
    pivots: &[Pivot],
    batch_lines: usize,
) -> Result<(Vec<String>, kiln_augment::apertium::Apertium)> {
    let mut codes: Vec<String> = Vec::new();
    for pivot in pivots {
        if codes.iter().any(|c| c == pivot.code()) {
            return Err(usage(format!(
                "--pivot {} is given twice: each pivot gives one round trip",
                pivot.code()
            )));
        }
        codes.push(pivot.code().to_string());
    }
    if codes.is_empty() {
        return Err(usage("--pivot needs at least one language"));
    }
    let apertium = kiln_augment::apertium::Apertium::new().with_batch_lines(batch_lines);
    for code in &codes {
        apertium.mode(SOURCE, code)?;
        apertium.mode(code, SOURCE)?;
    }
    Ok((codes, apertium))
}

/// The language of the texts back-translation reads: English (every packaged pair is one
/// with English).
pub const SOURCE: &str = "eng";

#[derive(Args, Debug)]
pub struct AugmentArgs {
    /// The operation.
    #[arg(long, value_enum)]
    pub method: AugmentMethod,
    /// Rate of every operation (EDA's alpha; the paper recommends 0.1).
    #[arg(long, default_value_t = 0.1, allow_negative_numbers = true)]
    pub alpha: f64,
    /// Synonym replacement rate (default: --alpha).
    #[arg(long, allow_negative_numbers = true)]
    pub alpha_sr: Option<f64>,
    /// Random insertion rate (default: --alpha).
    #[arg(long, allow_negative_numbers = true)]
    pub alpha_ri: Option<f64>,
    /// Random swap rate (default: --alpha).
    #[arg(long, allow_negative_numbers = true)]
    pub alpha_rs: Option<f64>,
    /// Random deletion probability (default: --alpha).
    #[arg(long, allow_negative_numbers = true)]
    pub p_rd: Option<f64>,
    /// Augmented lines per input line.
    #[arg(long, default_value_t = 4, value_parser = crate::limits::count::<1, { crate::limits::MAX_COPIES }>)]
    pub n: usize,
    /// Seed: the same seed and input give the same output.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Read lines from this file (default: stdin).
    #[arg(long, default_value = "-")]
    pub input: PathBuf,
    /// Write here (atomically) instead of stdout (`-`: stdout).
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// WordNet database folder (default: $KILN_WORDNET, else .cache/wordnet, which
    /// scripts/fetch_wordnet.sh fills).
    #[arg(long)]
    pub wordnet: Option<PathBuf>,
    /// Pivot languages of --method back-translate, comma-separated, one round trip each
    /// (Apertium pairs with English, as installed).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "spa")]
    pub pivot: Vec<Pivot>,
    /// Lines per Apertium process (--method back-translate); the output does not depend on it.
    #[arg(long, default_value_t = kiln_augment::apertium::DEFAULT_BATCH_LINES, value_parser = crate::limits::count::<1, { crate::limits::MAX_BATCH }>)]
    pub batch: usize,
}

pub fn run(args: &AugmentArgs) -> Result<()> {
    let config = EdaConfig {
        alpha_sr: args.alpha_sr.unwrap_or(args.alpha),
        alpha_ri: args.alpha_ri.unwrap_or(args.alpha),
        alpha_rs: args.alpha_rs.unwrap_or(args.alpha),
        p_rd: args.p_rd.unwrap_or(args.alpha),
    };
    config.check().map_err(|e| {
        usage(format!(
            "{e} (--alpha or --alpha-sr/--alpha-ri/--alpha-rs/--p-rd)"
        ))
    })?;
    if let Some(out) = output_path(args) {
        if same_file(out, &args.input) {
            return Err(usage(format!(
                "--output {} is the same file as --input: kiln never overwrites its inputs",
                out.display()
            )));
        }
    }
    if args.method == AugmentMethod::BackTranslate {
        return back_translation::run(args, &config);
    }
    let needs_wordnet = matches!(
        args.method,
        AugmentMethod::Synonym | AugmentMethod::Insert | AugmentMethod::Eda
    );
    let wordnet = load_wordnet_if(needs_wordnet, args.wordnet.as_ref())?;
    // Output first (a missing folder fails now, not after the work), then line by line: the
    // first lines come out while the rest is read, and memory stays flat whatever the size.
    let mut out = open_output(args)?;
    let bar = progress_bar(
        std::fs::metadata(&args.input).map(|m| m.len()).unwrap_or(0),
        "{bar:30} {bytes}/{total_bytes} read, eta {eta}",
    );
    let finished = for_each_line(&args.input, |i, line, bytes| {
        bar.inc(bytes as u64);
        // One generator per line: a line's augmentations do not depend on the lines before it.
        let mut rng =
            StdRng::seed_from_u64(args.seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let augmented: Vec<String> = if line.trim().is_empty() {
            vec![String::new(); args.n]
        } else if args.method == AugmentMethod::Eda {
            eda(
                line,
                &config,
                args.n,
                wordnet.as_ref().expect("loaded"),
                &mut rng,
            )?
        } else {
            let operation = match args.method {
                AugmentMethod::Synonym => Operation::Synonym,
                AugmentMethod::Insert => Operation::Insert,
                AugmentMethod::Swap => Operation::Swap,
                _ => Operation::Delete,
            };
            (0..args.n)
                .map(|_| apply(operation, line, &config, wordnet.as_ref(), &mut rng))
                .collect::<Result<_, _>>()?
        };
        for text in augmented {
            out.write_line(&text)?;
        }
        Ok(())
    });
    bar.finish_and_clear();
    close_output(out, finished, args)?;
    Ok(())
}

/// The file `--output` names; `None` for stdout (no `--output`, or `-`, as for `--input`).
fn output_path(args: &AugmentArgs) -> Option<&Path> {
    args.output
        .as_deref()
        .filter(|path| *path != Path::new("-"))
}

/// `--output` (written atomically) or stdout.
fn open_output(args: &AugmentArgs) -> Result<Output<'static>> {
    Ok(match output_path(args) {
        Some(path) => Output::File(
            kiln::atomic::AtomicFile::create(path)
                .with_context(|| format!("cannot write {}", path.display()))?,
        ),
        None => Output::Stdout(std::io::BufWriter::new(std::io::stdout().lock())),
    })
}

/// Ends a run whose lines ended with `finished`: the file is committed, stdout flushed. A
/// reader that went away (`kiln augment | head`) is a normal end: `Ok(false)`.
fn close_output(out: Output<'_>, finished: Result<()>, args: &AugmentArgs) -> Result<bool> {
    match finished {
        Ok(()) => {}
        Err(e) if is_broken_pipe(&e) => return Ok(false),
        Err(e) => return Err(e),
    }
    match out {
        Output::File(file) => {
            let path = output_path(args).expect("a file output has a path");
            file.commit()
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        Output::Stdout(mut stdout) => match stdout.flush() {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(false),
            other => other.context("cannot write stdout")?,
        },
    }
    Ok(true)
}

/// Where augmented lines go.
enum Output<'a> {
    File(kiln::atomic::AtomicFile),
    Stdout(std::io::BufWriter<std::io::StdoutLock<'a>>),
}

impl Output<'_> {
    fn write_line(&mut self, text: &str) -> Result<()> {
        let writer: &mut dyn Write = match self {
            Self::File(file) => file,
            Self::Stdout(stdout) => stdout,
        };
        writer
            .write_all(text.as_bytes())
            .and_then(|_| writer.write_all(b"\n"))
            .map_err(anyhow::Error::from)
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
