//! `--backend auto|wgpu|ndarray|flex` and dispatch to code generic over a burn backend.

use anyhow::{bail, Result};
use clap::ValueEnum;
use kiln::backend::{wgpu_adapters, AdapterInfo};

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

/// The backend a run uses, once `auto` is resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolved {
    Wgpu,
    Ndarray,
    Flex,
}

impl Resolved {
    pub fn name(self) -> &'static str {
        match self {
            Self::Wgpu => "wgpu",
            Self::Ndarray => "ndarray",
            Self::Flex => "flex",
        }
    }
}

/// A resolved backend with a description of the device it runs on.
pub struct Selection {
    pub backend: Resolved,
    pub device_name: String,
    /// Why `auto` chose what it chose (None when the user chose).
    pub reason: Option<String>,
}

fn describe(adapter: &AdapterInfo) -> String {
    format!("{} ({:?}, {})", adapter.name, adapter.kind, adapter.api)
}

/// Resolves `choice` against the adapters on this machine.
pub fn select(choice: BackendChoice) -> Result<Selection> {
    match choice {
        BackendChoice::Ndarray => Ok(Selection {
            backend: Resolved::Ndarray,
            device_name: "CPU (ndarray)".to_string(),
            reason: None,
        }),
        BackendChoice::Flex => Ok(Selection {
            backend: Resolved::Flex,
            device_name: flex_device_name(),
            reason: None,
        }),
        BackendChoice::Wgpu => {
            let adapters = wgpu_adapters();
            let Some(best) = adapters
                .iter()
                .find(|a| a.kind.is_gpu())
                .or_else(|| adapters.first())
            else {
                bail!("no wgpu adapter found (no GPU driver; on Debian, mesa-vulkan-drivers provides a software Vulkan device)");
            };
            Ok(Selection {
                backend: Resolved::Wgpu,
                device_name: describe(best),
                reason: None,
            })
        }
        BackendChoice::Auto => {
            let adapters = wgpu_adapters();
            if let Some(gpu) = adapters.iter().find(|a| a.kind.is_gpu()) {
                Ok(Selection {
                    backend: Resolved::Wgpu,
                    device_name: describe(gpu),
                    reason: Some(format!("found GPU adapter {}", gpu.name)),
                })
            } else {
                let why = match adapters.first() {
                    Some(a) => format!(
                        "no GPU adapter, only the software device {}; flex is the fastest CPU backend",
                        a.name
                    ),
                    None => "no wgpu adapter; flex is the fastest CPU backend".to_string(),
                };
                Ok(Selection {
                    backend: Resolved::Flex,
                    device_name: flex_device_name(),
                    reason: Some(why),
                })
            }
        }
    }
}

fn flex_device_name() -> String {
    format!("CPU (flex, {})", kiln::kernels::cpu_features().summary())
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

/// Calls `$body` with `B` bound to the selected backend type and `$device` to its device.
#[macro_export]
macro_rules! with_backend {
    ($resolved:expr, |$b:ident, $device:ident| $body:expr) => {
        match $resolved {
            $crate::backend_select::Resolved::Ndarray => {
                type $b = kiln::backend::Cpu;
                let $device = kiln::backend::cpu_device();
                $body
            }
            $crate::backend_select::Resolved::Flex => {
                type $b = kiln::backend::Flex;
                let $device = kiln::backend::flex_device();
                $body
            }
            $crate::backend_select::Resolved::Wgpu => {
                type $b = kiln::backend::Gpu;
                let $device = kiln::backend::gpu_device();
                $body
            }
        }
    };
}

/// [`with_backend!`] with burn's autodiff around the selected backend (for commands that
/// compute gradients: pruning by importance, fine-tuning).
#[macro_export]
macro_rules! with_autodiff_backend {
    ($resolved:expr, |$b:ident, $device:ident| $body:expr) => {
        match $resolved {
            $crate::backend_select::Resolved::Ndarray => {
                type $b = kiln::backend::CpuAutodiff;
                let $device = kiln::backend::cpu_device();
                $body
            }
            $crate::backend_select::Resolved::Flex => {
                type $b = kiln::backend::FlexAutodiff;
                let $device = kiln::backend::flex_device();
                $body
            }
            $crate::backend_select::Resolved::Wgpu => {
                type $b = kiln::backend::GpuAutodiff;
                let $device = kiln::backend::gpu_device();
                $body
            }
        }
    };
}
