//! # kiln
//!
//! PyTorch-compatible Transformer encoders on [burn], generic over
//! [`Backend`](burn::tensor::backend::Backend): the same numbers as `torch.nn.TransformerEncoder`
//! on the wgpu GPU backend and the flex and ndarray CPU backends, from one implementation.
//! On a CPU, use [`backend::Flex`]: kiln's kernels ([`kernels`]: int8 matrix products, ...)
//! run there, and it is the fastest CPU backend.
//!
//! - [`MultiHeadAttention`], [`TransformerEncoderLayer`], [`TransformerEncoder`]: the modules,
//!   with PyTorch's defaults ([`TransformerEncoderLayerConfig`]) and `state_dict` names;
//! - [`SrcMask`] / [`KeyPaddingMask`]: bool (`true` = masked out) or float (added) masks;
//! - [`EncoderInput`] / [`EncoderOutput`]: one forward pass that can also return per-layer
//!   attention weights and hidden states;
//! - [`Execution`]: how the encoder runs its forward passes (skipping padding, slices of the
//!   batch on CPU threads, the attention kernel), set once on the model, automatic by default;
//! - [`Precision`]: f32, int8 Linear layers computed with integer matrix products, or bf16
//!   ones computed with bf16 dot products ([`TransformerEncoder::with_precision`]);
//! - [`weights`]: `model.safetensors` with PyTorch's keys, and a load report.
//!
//! ```no_run
//! use kiln::{backend::{Flex, flex_device}, TransformerEncoder, EncoderInput};
//! use burn::tensor::{Tensor, Distribution};
//!
//! let device = flex_device();
//! // with_precision packs the f32 weights once for kiln's CPU kernel (where the CPU has AVX-512).
//! let model = TransformerEncoder::<Flex>::from_dir("my_model", &device)?
//!     .with_precision(kiln::Precision::F32);
//! let src = Tensor::<Flex, 3>::random([10, 2, model.config.d_model], Distribution::Default, &device);
//! let out = model.run(EncoderInput::new(src).causal(true).need_weights(true))?;
//! println!("{:?}, {} attention maps", out.output.dims(), out.attentions.unwrap().len());
//! # Ok::<(), kiln::KilnError>(())
//! ```

pub mod atomic;
pub mod attention;
pub mod backend;
mod bias;
pub mod config;
pub mod encoder;
pub mod error;
pub mod execution;
pub mod input;
pub mod input_file;
pub mod kernels;
pub mod layer;
pub mod layout;
pub mod mask;
pub mod memory;
mod packed;
mod split;
pub mod weights;

pub use attention::MultiHeadAttention;
pub use config::{
    Activation, LayerInit, MultiHeadAttentionConfig, TransformerEncoderConfig,
    TransformerEncoderLayerConfig,
};
pub use encoder::{TransformerEncoder, ZeroFill};
pub use error::{KilnError, Result};
pub use execution::{AttentionKernel, BatchSplit, Execution};
pub use input::{EncoderInput, EncoderOutput, LinearInputs};
pub use kernels::Precision;
pub use layer::TransformerEncoderLayer;
pub use layout::{device_reads, ensure_finite};
pub use mask::{padding_from_lengths, KeyPaddingMask, SrcMask};
pub use weights::{HostTensor, LoadReport, TensorFile, WeightSlot};
