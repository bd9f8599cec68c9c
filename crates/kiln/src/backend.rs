//! The backends kiln is built and tested on, by name.

/// burn's ndarray CPU backend, f32 (with OpenBLAS matmul when built with the `blas` feature):
/// the reference CPU backend of kiln's tests. For speed on a CPU use [`Flex`].
#[cfg(feature = "ndarray")]
pub type Cpu = burn::backend::NdArray<f32>;

/// burn's wgpu GPU backend (Vulkan, Metal, DX12; lavapipe's software Vulkan in CI), f32.
#[cfg(feature = "wgpu")]
pub type Gpu = burn::backend::Wgpu<f32, i32>;

/// burn's pure-Rust `flex` CPU backend, f32 (matmul through the `gemm` crate), where kiln's
/// CPU kernels ([`crate::kernels`]) run: the CPU backend to use.
#[cfg(feature = "flex")]
pub type Flex = burn::backend::Flex<f32>;

/// The flex device (the CPU).
#[cfg(feature = "flex")]
pub fn flex_device() -> burn::backend::flex::FlexDevice {
    burn::backend::flex::FlexDevice
}

/// `Cpu` with autodiff, for training.
#[cfg(feature = "ndarray")]
pub type CpuAutodiff = burn::backend::Autodiff<Cpu>;

/// `Flex` with autodiff, for training.
#[cfg(feature = "flex")]
pub type FlexAutodiff = burn::backend::Autodiff<Flex>;

/// `Gpu` with autodiff, for training.
#[cfg(feature = "wgpu")]
pub type GpuAutodiff = burn::backend::Autodiff<Gpu>;

/// The ndarray device.
#[cfg(feature = "ndarray")]
pub fn cpu_device() -> burn::backend::ndarray::NdArrayDevice {
    burn::backend::ndarray::NdArrayDevice::Cpu
}

/// The default wgpu device (the first adapter wgpu picks).
#[cfg(feature = "wgpu")]
pub fn gpu_device() -> burn::backend::wgpu::WgpuDevice {
    burn::backend::wgpu::WgpuDevice::DefaultDevice
}

/// What kind of device a wgpu adapter is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdapterKind {
    /// A discrete GPU.
    DiscreteGpu,
    /// A GPU sharing memory with the CPU.
    IntegratedGpu,
    /// A virtualised GPU.
    VirtualGpu,
    /// A software rasteriser running on the CPU (e.g. Mesa's lavapipe, llvmpipe).
    Cpu,
    /// Unknown.
    Other,
}

impl AdapterKind {
    /// Whether this is real GPU hardware (not a CPU-type software device).
    pub fn is_gpu(self) -> bool {
        matches!(
            self,
            Self::DiscreteGpu | Self::IntegratedGpu | Self::VirtualGpu
        )
    }
}

/// One wgpu adapter, as the system reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterInfo {
    /// Device name, e.g. `llvmpipe (LLVM 15.0.6, 256 bits)`.
    pub name: String,
    /// Its kind.
    pub kind: AdapterKind,
    /// Graphics API, e.g. `Vulkan`.
    pub api: String,
    /// Driver name and version.
    pub driver: String,
}

/// burn's optimizations that the wgpu backend runs with: `fusion` (element-wise ops and
/// reductions fused into the kernels around them; seen in the backend's type) and `autotune`
/// (each kernel's variant picked by timing them on the device once per shape; kiln's `wgpu`
/// feature turns on burn's `autotune`).
#[cfg(feature = "wgpu")]
pub fn wgpu_optimizations() -> Vec<&'static str> {
    let mut on = Vec::new();
    if std::any::type_name::<Gpu>().contains("Fusion") {
        on.push("fusion");
    }
    on.push("autotune");
    on
}

/// Every wgpu adapter of the primary APIs (Vulkan, Metal, DX12) on this machine; empty when
/// there is none. (OpenGL is not probed: burn-wgpu does not pick it by default.)
#[cfg(feature = "wgpu")]
pub fn wgpu_adapters() -> Vec<AdapterInfo> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends: wgpu::Backends::PRIMARY,
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    });
    let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::PRIMARY));
    adapters
        .into_iter()
        .map(|adapter| {
            let info = adapter.get_info();
            AdapterInfo {
                name: info.name,
                kind: match info.device_type {
                    wgpu::DeviceType::DiscreteGpu => AdapterKind::DiscreteGpu,
                    wgpu::DeviceType::IntegratedGpu => AdapterKind::IntegratedGpu,
                    wgpu::DeviceType::VirtualGpu => AdapterKind::VirtualGpu,
                    wgpu::DeviceType::Cpu => AdapterKind::Cpu,
                    wgpu::DeviceType::Other => AdapterKind::Other,
                },
                api: format!("{:?}", info.backend),
                driver: format!("{} {}", info.driver, info.driver_info)
                    .trim()
                    .to_string(),
            }
        })
        .collect()
}

/// Which backend to run on: `auto` or one by name (the CLI's `--backend`, the Python
/// bindings' `backend=`).
#[cfg(all(feature = "ndarray", feature = "wgpu", feature = "flex"))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendChoice {
    /// wgpu when a GPU adapter (not a CPU-type software one) is present, else flex, the
    /// fastest CPU backend.
    #[default]
    Auto,
    /// burn-wgpu (Vulkan/Metal/DX12; software Vulkan too).
    Wgpu,
    /// burn-ndarray on the CPU (the reference CPU backend).
    Ndarray,
    /// burn's flex backend on the CPU, with kiln's CPU kernels.
    Flex,
}

#[cfg(all(feature = "ndarray", feature = "wgpu", feature = "flex"))]
impl std::str::FromStr for BackendChoice {
    type Err = crate::KilnError;

    /// `auto`, `wgpu`, `ndarray` or `flex`.
    fn from_str(s: &str) -> crate::Result<Self> {
        match s {
            "auto" => Ok(Self::Auto),
            "wgpu" => Ok(Self::Wgpu),
            "ndarray" => Ok(Self::Ndarray),
            "flex" => Ok(Self::Flex),
            other => Err(crate::KilnError::Config(format!(
                "unknown backend {other:?} (auto, wgpu, ndarray, flex)"
            ))),
        }
    }
}

/// The backend a run uses, once `auto` is resolved.
#[cfg(all(feature = "ndarray", feature = "wgpu", feature = "flex"))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolved {
    /// [`Gpu`].
    Wgpu,
    /// [`Cpu`].
    Ndarray,
    /// [`Flex`].
    Flex,
}

#[cfg(all(feature = "ndarray", feature = "wgpu", feature = "flex"))]
impl Resolved {
    /// `wgpu`, `ndarray` or `flex`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Wgpu => "wgpu",
            Self::Ndarray => "ndarray",
            Self::Flex => "flex",
        }
    }
}

/// A resolved backend with a description of the device it runs on.
#[cfg(all(feature = "ndarray", feature = "wgpu", feature = "flex"))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// The backend.
    pub backend: Resolved,
    /// The device, in words (adapter name and API, or the CPU's features).
    pub device_name: String,
    /// Why `auto` chose what it chose (`None` when the caller named the backend).
    pub reason: Option<String>,
}

#[cfg(all(feature = "ndarray", feature = "wgpu", feature = "flex"))]
fn describe_adapter(adapter: &AdapterInfo) -> String {
    format!("{} ({:?}, {})", adapter.name, adapter.kind, adapter.api)
}

#[cfg(all(feature = "ndarray", feature = "wgpu", feature = "flex"))]
fn flex_device_name() -> String {
    format!("CPU (flex, {})", crate::kernels::cpu_features().summary())
}

/// Resolves `choice` against the adapters on this machine: `auto` takes wgpu only for a real
/// GPU adapter, else flex; `wgpu` takes the first GPU adapter, else any (software) one, and is
/// an error ([`KilnError::NoDevice`](crate::KilnError::NoDevice)) without any.
#[cfg(all(feature = "ndarray", feature = "wgpu", feature = "flex"))]
pub fn select(choice: BackendChoice) -> crate::Result<Selection> {
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
                return Err(crate::KilnError::NoDevice(
                    "no wgpu adapter found (no GPU driver; on Debian, mesa-vulkan-drivers provides a software Vulkan device)".to_string(),
                ));
            };
            Ok(Selection {
                backend: Resolved::Wgpu,
                device_name: describe_adapter(best),
                reason: None,
            })
        }
        BackendChoice::Auto => {
            let adapters = wgpu_adapters();
            if let Some(gpu) = adapters.iter().find(|a| a.kind.is_gpu()) {
                Ok(Selection {
                    backend: Resolved::Wgpu,
                    device_name: describe_adapter(gpu),
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

/// Calls `$body` with `$b` bound to the backend type of a [`Resolved`](crate::backend::Resolved)
/// and `$device` to its device: code generic over the backend, instantiated for each, as in
/// `kiln::with_backend!(select(choice)?.backend, |B, device| run::<B>(&device))`.
#[cfg(all(feature = "ndarray", feature = "wgpu", feature = "flex"))]
#[macro_export]
macro_rules! with_backend {
    ($resolved:expr, |$b:ident, $device:ident| $body:expr) => {
        match $resolved {
            $crate::backend::Resolved::Ndarray => {
                type $b = $crate::backend::Cpu;
                let $device = $crate::backend::cpu_device();
                $body
            }
            $crate::backend::Resolved::Flex => {
                type $b = $crate::backend::Flex;
                let $device = $crate::backend::flex_device();
                $body
            }
            $crate::backend::Resolved::Wgpu => {
                type $b = $crate::backend::Gpu;
                let $device = $crate::backend::gpu_device();
                $body
            }
        }
    };
}

/// [`with_backend!`](crate::with_backend!) with burn's autodiff around the selected backend (for code that computes
/// gradients: pruning by importance, fine-tuning).
#[cfg(all(feature = "ndarray", feature = "wgpu", feature = "flex"))]
#[macro_export]
macro_rules! with_autodiff_backend {
    ($resolved:expr, |$b:ident, $device:ident| $body:expr) => {
        match $resolved {
            $crate::backend::Resolved::Ndarray => {
                type $b = $crate::backend::CpuAutodiff;
                let $device = $crate::backend::cpu_device();
                $body
            }
            $crate::backend::Resolved::Flex => {
                type $b = $crate::backend::FlexAutodiff;
                let $device = $crate::backend::flex_device();
                $body
            }
            $crate::backend::Resolved::Wgpu => {
                type $b = $crate::backend::GpuAutodiff;
                let $device = $crate::backend::gpu_device();
                $body
            }
        }
    };
}
