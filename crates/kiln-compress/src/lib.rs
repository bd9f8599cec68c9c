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
//! [`prune::prune`] runs the whole pruning pipeline of `kiln prune` (choose, mask or shrink,
//! refit, measure, distil) on any [`DataSource`]: text lines of a text model ([`TextData`]) or
//! random inputs of a plain encoder ([`RandomData`]), reporting to a [`Progress`].
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
pub mod data_source;
pub mod distill;
pub mod encoder_model;
pub mod error;
pub mod importance;
pub mod metrics;
pub mod obs;
pub mod plain;
pub mod progress;
pub mod prune;
pub mod quantize;
pub mod random_data;
pub mod reconstruct;
pub mod recovery;
pub mod structured;
pub mod text;
pub mod text_data;
pub mod unstructured;
pub mod wanda;

pub use data_source::DataSource;
pub use encoder_model::EncoderModel;
pub use error::{CompressError, Result};
pub use progress::{NoProgress, Progress, Stage};
pub use prune::{prune, PruneSpec, Pruned};
pub use random_data::RandomData;
pub use recovery::recover;
pub use text_data::TextData;
pub use unstructured::LinearKind;
