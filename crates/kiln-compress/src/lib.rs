//! # kiln-compress
//!
//! Compression of kiln encoders ([`kiln::TransformerEncoder`], and the text models of
//! `kiln-text`, whose layers are one), on any burn backend:
//!
//! - [`unstructured`]: magnitude pruning of the Linear weights per tensor or across the model
//!   (PyTorch's `l1_unstructured` / `global_unstructured`) and a random baseline, with masks that
//!   keep pruned weights at zero while fine-tuning, and a per-layer sparsity report;
//! - [`wanda`]: activation-aware pruning (Wanda: `|w_ij| * ||x_j||` per output row), calibrated
//!   by one forward pass that captures every Linear layer's input;
//! - [`structured`]: removal of whole attention heads and feed-forward neurons that physically
//!   shrinks the matrices ([`structured::shrink`]), by importance ([`importance`]: Michel et
//!   al. 2019's gradient score, or weight norms), optionally with [`obs`] choosing which heads
//!   and neurons of each layer go (Optimal Brain Surgeon on calibration data);
//! - [`reconstruct`]: after structured pruning, a layer-by-layer least-squares refit of `out_proj`
//!   and `linear2` so the shrunk layers reproduce the original ones on [`calibration`] data;
//! - [`distill`]: fine-tuning to recover by knowledge distillation from the unpruned teacher,
//!   with burn autodiff and AdamW;
//! - [`quantize`]: post-training int8 quantization of the Linear weights through burn;
//! - [`text`]: the same for sentence encoders, with [`metrics`] (cosine, Spearman) to measure it.
//!
//! ```no_run
//! use kiln::{backend::{cpu_device, Cpu}, TransformerEncoder};
//! use kiln_compress::unstructured::{prune_unstructured, sparsity_report, UnstructuredMethod};
//!
//! let device = cpu_device();
//! let model = TransformerEncoder::<Cpu>::from_dir("my_model", &device)?;
//! let (pruned, _masks) = prune_unstructured(model, UnstructuredMethod::Magnitude, 0.2)?;
//! println!("{:.3}", sparsity_report(&pruned).total.sparsity);
//! # Ok::<(), kiln_compress::CompressError>(())
//! ```

pub mod calibration;
pub mod calibration_batch;
pub mod distill;
pub mod error;
pub mod importance;
mod layout;
pub mod metrics;
pub mod obs;
pub mod plain;
pub mod quantize;
pub mod reconstruct;
pub mod structured;
pub mod text;
pub mod unstructured;
pub mod wanda;

pub use error::{CompressError, Result};
pub use unstructured::LinearKind;
