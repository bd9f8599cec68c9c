//! `--backend auto|wgpu|ndarray|flex`. The choice itself ([`kiln::backend::select`]) and the
//! dispatch to code generic over a burn backend (`kiln::with_backend!`) live in the core, shared
//! with the Python bindings; this module is the flag.

use anyhow::Result;
use clap::ValueEnum;
use kiln::backend::Selection;

/// The backends the CLI offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendChoice {
    /// wgpu when a GPU adapter (not a CPU-type software one) is present, else flex, kiln's
    /// fastest CPU backend.
    Auto,
    /// burn-wgpu (Vulkan/Metal/DX12; works on software Vulkan too).
    Wgpu,
    /// burn-ndarray on the CPU (the reference CPU backend; slower than flex).
    Ndarray,
    /// burn's pure-Rust flex backend on the CPU, with kiln's CPU kernels (the fastest CPU path).
    Flex,
}

impl From<BackendChoice> for kiln::backend::BackendChoice {
    fn from(choice: BackendChoice) -> Self {
        match choice {
            BackendChoice::Auto => Self::Auto,
            BackendChoice::Wgpu => Self::Wgpu,
            BackendChoice::Ndarray => Self::Ndarray,
            BackendChoice::Flex => Self::Flex,
        }
    }
}

/// Resolves `choice` against the adapters on this machine.
pub fn select(choice: BackendChoice) -> Result<Selection> {
    Ok(kiln::backend::select(choice.into())?)
}

/// Says on stderr which backend `--backend auto` picked, and why.
pub fn announce(selection: &Selection) {
    if let Some(reason) = &selection.reason {
        eprintln!(
            "kiln: --backend auto picked {} ({reason})",
            selection.backend.name()
        );
    }
}
