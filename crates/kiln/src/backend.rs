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
