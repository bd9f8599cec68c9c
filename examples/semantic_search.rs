//! Semantic search with a pretrained sentence encoder (all-MiniLM-L6-v2): embed a few documents,
//! rank them against a query by cosine similarity.
//!
//! ```sh
//! scripts/fetch_minilm.sh            # once: unpacks the model into .cache/models/all-MiniLM-L6-v2
//! cargo run --release --example semantic_search -- "Who is eating?"
//! ```

use kiln::backend::{cpu_device, Cpu};
use kiln_text::{cosine, TextEncoder};

fn main() -> Result<(), kiln_text::TextError> {
    let model_dir = std::env::var("KILN_MINILM_DIR")
        .unwrap_or_else(|_| ".cache/models/all-MiniLM-L6-v2".to_string());
    let query = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "Who is eating?".to_string());
    let documents = [
        "A man is eating food.",
        "A woman is playing violin.",
        "Two men pushed carts through the woods.",
        "A monkey is playing drums.",
        "Someone is having a meal at the restaurant.",
    ];
    let encoder = TextEncoder::<Cpu>::from_dir(&model_dir, &cpu_device())?;
    let query_vector = encoder.embed(&[query.as_str()])?.remove(0);
    let vectors = encoder.embed(&documents)?;
    let mut ranked: Vec<(f32, &str)> = vectors
        .iter()
        .map(|v| cosine(&query_vector, v))
        .zip(documents)
        .collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
    println!("query: {query}");
    for (score, document) in ranked {
        println!("{score:7.4}  {document}");
    }
    Ok(())
}
