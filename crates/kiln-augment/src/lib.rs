//! # kiln-augment
//!
//! Data augmentation for kiln's text models, deterministic under a seed:
//!
//! - [`eda`]: EDA (Wei & Zou 2019): synonym replacement, random insertion, random swap, random
//!   deletion, with the paper's rates; synonyms from WordNet 3.0 ([`wordnet`], Debian's
//!   `wordnet-base` database files, `scripts/fetch_wordnet.sh`);
//! - [`translate`]: back-translation through a pluggable [`translate::Translator`];
//!   [`apertium::Apertium`] is one, over Debian's offline Apertium, and [`back_translation`]
//!   makes K variants per text from it;
//! - [`tokens`]: token-id masking and span cutoff;
//! - [`embedding`]: Gaussian noise and mixup on embeddings, for training.
//!
//! ```no_run
//! use kiln_augment::{eda::{eda, EdaConfig}, wordnet::WordNet};
//! use rand::SeedableRng;
//!
//! let wordnet = WordNet::load(".cache/wordnet")?;
//! let mut rng = rand::rngs::StdRng::seed_from_u64(0);
//! for text in eda("The quick brown fox jumps over the lazy dog", &EdaConfig::default(), 4, &wordnet, &mut rng)? {
//!     println!("{text}");
//! }
//! # Ok::<(), kiln_augment::AugmentError>(())
//! ```

pub mod apertium;
pub mod back_translation;
mod chunked_list;
pub mod eda;
pub mod embedding;
pub mod error;
pub mod tokens;
pub mod translate;
pub mod wordnet;

pub use error::{AugmentError, Result};
