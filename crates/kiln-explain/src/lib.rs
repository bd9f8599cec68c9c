//! # kiln-explain
//!
//! Interpretability for kiln encoders, on any burn backend, from the core's one forward pass:
//!
//! - [`attention`]: attention maps per layer and head ([`attention::AttentionMaps`]) for plain
//!   encoders and text models;
//! - [`rollout`]: attention rollout (Abnar & Zuidema 2020), honouring padding;
//! - [`gradients`]: gradient × input and Integrated Gradients (Sundararajan et al. 2017) on a
//!   text model's word vectors, for a [`target::Target`] (one embedding dimension, the pooled
//!   vector's norm, or the cosine similarity to another text), through burn autodiff;
//! - [`heads`]: head importance for a target (Michel et al. 2019, the score
//!   kiln-compress's head pruning uses);
//! - [`report`]: the JSON report of `kiln explain`; [`heatmap`]: PNG heatmaps (plotters);
//!   [`html`]: a self-contained HTML page.
//!
//! ```no_run
//! use kiln::backend::{cpu_device, Cpu, CpuAutodiff};
//! use kiln_explain::{explain_attention, explain_gradients, IntegratedGradientsConfig, Method, Target};
//! use kiln_text::TextEncoder;
//!
//! let encoder = TextEncoder::<Cpu>::from_dir("all-MiniLM-L6-v2", &cpu_device())?;
//! let report = explain_attention(&encoder, "The cat sat on the mat.", Method::Rollout, None, None)?;
//! println!("{:?}", report.token_scores);
//!
//! let encoder = TextEncoder::<CpuAutodiff>::from_dir("all-MiniLM-L6-v2", &cpu_device())?;
//! let ig = explain_gradients(&encoder, "The cat sat on the mat.", Method::IntegratedGradients,
//!     &Target::Norm, &IntegratedGradientsConfig::default(), |_| {})?;
//! println!("completeness gap {:?}", ig.delta);
//! # Ok::<(), kiln_explain::ExplainError>(())
//! ```

pub mod attention;
pub mod colors;
pub mod error;
pub mod gradients;
pub mod heads;
pub mod heatmap;
pub mod html;
pub mod report;
pub mod rollout;
pub mod target;

pub use attention::{AttentionMaps, SquareMatrix};
pub use error::{ExplainError, Result};
pub use gradients::{Attribution, Baseline, IntegratedGradientsConfig};
pub use report::{explain_attention, explain_gradients, Method, Report};
pub use rollout::rollout;
pub use target::Target;
