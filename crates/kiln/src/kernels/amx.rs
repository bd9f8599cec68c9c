//! Intel AMX (Advanced Matrix Extensions) microkernels for the bf16 and int8 Linear layers.
//!
//! AMX adds eight tile registers of up to 16 rows x 64 bytes and one instruction that
//! multiplies two tiles into a third: `tdpbf16ps` (`bf16 x bf16 -> f32`, 16 x 16 outputs from
//! 32 inputs each) and `tdpbusd` (`u8 x i8 -> i32`, 16 x 16 outputs from 64 inputs each). One
//! of them does the work of 16 AVX-512 dot-product instructions, so where the CPU has AMX
//! (Sapphire Rapids and later Xeons) the bf16 and int8 matrix products take it.
//!
//! The panels packed for the AVX-512 kernels are already laid out as AMX wants its second
//! operand (for every pair / group of four inputs, the channels' values side by side), so a
//! tile of 16 channels is a strided load from the same packed weight; the activations are
//! row-major, a tile of 16 rows is a strided load too. Both kernels need the inputs padded to
//! whole tiles: `k_padded` a multiple of [`K_BF16`] / [`K_INT8`], and rows to a multiple of 16
//! (zeros, which add nothing).
//!
//! Linux hands AMX's tile state to a process only on request (`arch_prctl
//! ARCH_REQ_XCOMP_PERM`); [`request_permission`] asks once, and AMX counts as present only when
//! the CPU has it and the kernel granted it. Rust's AMX intrinsics are unstable, so the
//! instructions are written with `asm!`.

/// Inputs per bf16 tile row (64 bytes of bf16).
pub const K_BF16: usize = 32;
/// Inputs per int8 tile row (64 bytes of u8 / i8).
pub const K_INT8: usize = 64;
/// Rows of a tile.
pub const TILE_ROWS: usize = 16;

/// Whether the CPU has AMX-TILE with `bf16` / `int8` (CPUID leaf 7: EDX bits 22, 24, 25).
#[cfg(target_arch = "x86_64")]
pub fn cpu_has_amx() -> (bool, bool) {
    use std::arch::x86_64::{__cpuid, __cpuid_count};
    if __cpuid(0).eax < 7 {
        return (false, false);
    }
    let leaf7 = __cpuid_count(7, 0);
    let tile = leaf7.edx >> 24 & 1 == 1;
    (
        tile && leaf7.edx >> 22 & 1 == 1,
        tile && leaf7.edx >> 25 & 1 == 1,
    )
}

/// Asks Linux for this process's permission to use the AMX tile data (once per process; every
/// thread, present and future, shares it). `false` where the kernel refuses or is not Linux.
#[cfg(target_arch = "x86_64")]
pub fn request_permission() -> bool {
    #[cfg(target_os = "linux")]
    {
        const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
        const XFEATURE_XTILEDATA: libc::c_long = 18;
        // SAFETY: a plain system call with integer arguments; it changes only which register
        // state the kernel saves for this process.
        unsafe {
            libc::syscall(
                libc::SYS_arch_prctl,
                ARCH_REQ_XCOMP_PERM,
                XFEATURE_XTILEDATA,
            ) == 0
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

#[cfg(target_arch = "x86_64")]
pub use x86::{bf16_tile_16x48, int8_tile_32x32, release_tiles};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::asm;

    use super::{K_BF16, K_INT8, TILE_ROWS};

    /// The tile configuration both kernels use: palette 1, all eight tiles 16 rows x 64 bytes.
    #[repr(C, align(64))]
    struct TileConfig([u8; 64]);

    const CONFIG: TileConfig = {
        let mut bytes = [0u8; 64];
        bytes[0] = 1; // palette
        let mut tile = 0;
        while tile < 8 {
            bytes[16 + 2 * tile] = 64; // bytes per row (u16, little-endian)
            bytes[48 + tile] = TILE_ROWS as u8; // rows
            tile += 1;
        }
        TileConfig(bytes)
    };

    /// Loads the tile configuration on this thread.
    ///
    /// # Safety
    /// The CPU has AMX-TILE and the process has the tile permission.
    #[inline]
    unsafe fn configure() {
        asm!("ldtilecfg [{}]", in(reg) CONFIG.0.as_ptr(), options(nostack, readonly));
    }

    /// Returns this thread's tiles to their initial state, so that the kernel need not save
    /// them when it switches threads. Call once a thread is done with a run of tiles.
    ///
    /// # Safety
    /// The CPU has AMX-TILE and the process has the tile permission.
    pub unsafe fn release_tiles() {
        asm!("tilerelease", options(nostack, nomem));
    }

    /// `acc = a @ b` for 16 rows x 48 channels in bf16, accumulated in f32.
    ///
    /// - `a`: 16 rows of `kp` bf16, `a_stride` bf16 apart (row-major activations).
    /// - `b`: one packed panel, `[kp / 2][48][2]` bf16.
    /// - `acc`: 16 rows of 48 f32 (overwritten).
    ///
    /// # Safety
    /// The CPU has AMX-TILE and AMX-BF16, the process has the tile permission, `kp` is a
    /// multiple of [`K_BF16`], and `a` / `b` hold `16 * a_stride` / `kp * 48` values.
    pub unsafe fn bf16_tile_16x48(
        a: &[u16],
        a_stride: usize,
        kp: usize,
        b: &[u16],
        acc: &mut [[f32; 48]; 16],
    ) {
        debug_assert!(kp.is_multiple_of(K_BF16) && a_stride >= kp);
        debug_assert!(a.len() >= (TILE_ROWS - 1) * a_stride + kp && b.len() >= kp * 48);
        configure();
        // B: one row per pair of inputs, 48 channels x 2 bf16 = 192 bytes; a tile of 16
        // channels is 64 of them, 16 rows (32 inputs) deep.
        let b_stride: usize = 48 * 2 * 2;
        let a_stride_bytes = a_stride * 2;
        asm!(
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm2",
            options(nostack, nomem)
        );
        for block in 0..kp / K_BF16 {
            let ap = a.as_ptr().add(block * K_BF16);
            let bp = b.as_ptr().add(block * (K_BF16 / 2) * 96);
            asm!(
                "tileloadd tmm3, [{a} + {sa}*1]",
                "tileloadd tmm4, [{b} + {sb}*1]",
                "tileloadd tmm5, [{b} + {sb}*1 + 64]",
                "tileloadd tmm6, [{b} + {sb}*1 + 128]",
                "tdpbf16ps tmm0, tmm3, tmm4",
                "tdpbf16ps tmm1, tmm3, tmm5",
                "tdpbf16ps tmm2, tmm3, tmm6",
                a = in(reg) ap,
                sa = in(reg) a_stride_bytes,
                b = in(reg) bp,
                sb = in(reg) b_stride,
                options(nostack, readonly),
            );
        }
        let out = acc.as_mut_ptr() as *mut f32;
        asm!(
            "tilestored [{c} + {sc}*1], tmm0",
            "tilestored [{c} + {sc}*1 + 64], tmm1",
            "tilestored [{c} + {sc}*1 + 128], tmm2",
            c = in(reg) out,
            sc = in(reg) 48usize * 4,
            options(nostack),
        );
    }

    /// `acc = a @ b` for 32 rows x 32 channels in `u8 x i8 -> i32`.
    ///
    /// - `a`: 32 rows of `kp` u8, `a_stride` bytes apart (the quantized activations).
    /// - `b`: one packed panel, `[kp / 4][32][4]` i8.
    /// - `acc`: 32 rows of 32 i32 (overwritten).
    ///
    /// # Safety
    /// The CPU has AMX-TILE and AMX-INT8, the process has the tile permission, `kp` is a
    /// multiple of [`K_INT8`], and `a` / `b` hold `32 * a_stride` / `kp * 32` values.
    pub unsafe fn int8_tile_32x32(
        a: &[u8],
        a_stride: usize,
        kp: usize,
        b: &[i8],
        acc: &mut [[i32; 32]; 32],
    ) {
        debug_assert!(kp.is_multiple_of(K_INT8) && a_stride >= kp);
        debug_assert!(a.len() >= (2 * TILE_ROWS - 1) * a_stride + kp && b.len() >= kp * 32);
        configure();
        // B: one row per group of four inputs, 32 channels x 4 i8 = 128 bytes; a tile of 16
        // channels is 64 of them, 16 rows (64 inputs) deep.
        let b_stride: usize = 32 * 4;
        asm!(
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm2",
            "tilezero tmm3",
            options(nostack, nomem)
        );
        for block in 0..kp / K_INT8 {
            let a0 = a.as_ptr().add(block * K_INT8);
            let a1 = a0.add(TILE_ROWS * a_stride);
            let bp = b.as_ptr().add(block * (K_INT8 / 4) * b_stride);
            asm!(
                "tileloadd tmm4, [{a0} + {sa}*1]",
                "tileloadd tmm5, [{a1} + {sa}*1]",
                "tileloadd tmm6, [{b} + {sb}*1]",
                "tileloadd tmm7, [{b} + {sb}*1 + 64]",
                "tdpbusd tmm0, tmm4, tmm6",
                "tdpbusd tmm1, tmm4, tmm7",
                "tdpbusd tmm2, tmm5, tmm6",
                "tdpbusd tmm3, tmm5, tmm7",
                a0 = in(reg) a0,
                a1 = in(reg) a1,
                sa = in(reg) a_stride,
                b = in(reg) bp,
                sb = in(reg) b_stride,
                options(nostack, readonly),
            );
        }
        let out = acc.as_mut_ptr() as *mut i32;
        let lower = out.add(TILE_ROWS * 32);
        asm!(
            "tilestored [{c} + {sc}*1], tmm0",
            "tilestored [{c} + {sc}*1 + 64], tmm1",
            "tilestored [{d} + {sc}*1], tmm2",
            "tilestored [{d} + {sc}*1 + 64], tmm3",
            c = in(reg) out,
            d = in(reg) lower,
            sc = in(reg) 32usize * 4,
            options(nostack),
        );
    }
}
