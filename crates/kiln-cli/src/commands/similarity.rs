//! `kiln similarity`: the cosine similarity of two texts' embeddings.

use anyhow::{Context, Result};
use clap::Args;

use crate::backend_select::{announce, select};
use crate::text_model::{self, load, TextModelArgs};
use crate::with_backend;

#[derive(Args, Debug)]
pub struct SimilarityArgs {
    #[command(flatten)]
    pub model: TextModelArgs,
    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// First text.
    pub text_a: String,
    /// Second text.
    pub text_b: String,
}

pub fn run(args: &SimilarityArgs) -> Result<()> {
    text_model::check(&args.model)?;
    let selection = select(args.model.backend)?;
    announce(&selection);
    with_backend!(selection.backend, |B, device| {
        let encoder = load::<B>(&args.model, &device)?;
        let cosine = encoder
            .similarity(&args.text_a, &args.text_b)
            .context("embedding failed")?;
        if args.json {
            println!(
                "{}",
                serde_json::json!({"cosine": cosine, "backend": selection.backend.name()})
            );
        } else {
            println!("{cosine:.6}");
        }
        Ok(())
    })
}
