//! `kiln augment`: EDA text augmentation (WordNet synonyms), K augmented lines per input line.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use kiln_augment::eda::{apply, eda, EdaConfig, Operation};
use kiln_augment::wordnet::WordNet;
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::common::{read_lines, same_file, wordnet_dir};
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
}

#[derive(Args, Debug)]
pub struct AugmentArgs {
    /// The operation.
    #[arg(long, value_enum)]
    pub method: AugmentMethod,
    /// Rate of every operation (EDA's alpha; the paper recommends 0.1).
    #[arg(long, default_value_t = 0.1)]
    pub alpha: f64,
    /// Synonym replacement rate (default: --alpha).
    #[arg(long)]
    pub alpha_sr: Option<f64>,
    /// Random insertion rate (default: --alpha).
    #[arg(long)]
    pub alpha_ri: Option<f64>,
    /// Random swap rate (default: --alpha).
    #[arg(long)]
    pub alpha_rs: Option<f64>,
    /// Random deletion probability (default: --alpha).
    #[arg(long)]
    pub p_rd: Option<f64>,
    /// Augmented lines per input line.
    #[arg(long, default_value_t = 4)]
    pub n: usize,
    /// Seed: the same seed and input give the same output.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Read lines from this file (default: stdin).
    #[arg(long, default_value = "-")]
    pub input: PathBuf,
    /// Write here (atomically) instead of stdout.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// WordNet database folder (default: $KILN_WORDNET, else .cache/wordnet, which
    /// scripts/fetch_wordnet.sh fills).
    #[arg(long)]
    pub wordnet: Option<PathBuf>,
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
    if let Some(out) = &args.output {
        if same_file(out, &args.input) {
            return Err(usage(format!(
                "--output {} is the same file as --input: kiln never overwrites its inputs",
                out.display()
            )));
        }
    }
    let needs_wordnet = matches!(
        args.method,
        AugmentMethod::Synonym | AugmentMethod::Insert | AugmentMethod::Eda
    );
    let wordnet = if needs_wordnet {
        let dir = wordnet_dir(args.wordnet.as_ref());
        Some(
            WordNet::load(&dir)
                .with_context(|| format!("cannot load WordNet from {}", dir.display()))?,
        )
    } else {
        None
    };
    let lines = read_lines(&args.input)?;
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
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
            out.push_str(&text);
            out.push('\n');
        }
    }
    match &args.output {
        Some(path) => kiln::weights::write_atomic(path, out.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => print!("{out}"),
    }
    Ok(())
}
