//! The compression commands: `kiln prune`, `kiln distill` and `kiln quantize`. Each reads a
//! text model or a plain encoder and writes a new directory that `kiln embed` / `kiln forward`
//! load unchanged, with a report (`kiln_compression.json`).

pub mod distill;
pub mod progress;
pub mod prune;
pub mod quantize;
pub mod report;
pub mod settings;
pub mod source;
