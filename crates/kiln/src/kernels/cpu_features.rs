//! The CPU features kiln's kernels can use, detected once at run time, so that one binary runs
//! on any x86-64 and takes the fastest kernel the machine has.

use std::sync::OnceLock;

/// What this CPU offers to kiln's kernels. All `false` off x86-64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuFeatures {
    /// AVX2 and FMA (x86-64-v3).
    pub avx2_fma: bool,
    /// AVX-512 F, BW and VL.
    pub avx512: bool,
    /// AVX-512 VNNI: `u8 x i8 -> i32` dot products (`vpdpbusd`) on 512-bit registers.
    pub avx512_vnni: bool,
    /// AVX-VNNI: the same dot products on 256-bit registers (Alder Lake, Zen 5).
    pub avx_vnni: bool,
    /// AVX-512 BF16: `bf16 x bf16 -> f32` dot products (`vdpbf16ps`).
    pub avx512_bf16: bool,
    /// AMX-BF16: `bf16` tile products (`tdpbf16ps`), with the OS's permission to use the tiles.
    pub amx_bf16: bool,
    /// AMX-INT8: `u8 x i8` tile products (`tdpbusd`), with the OS's permission to use the tiles.
    pub amx_int8: bool,
}

impl CpuFeatures {
    /// What the CPU has, less what `KILN_DISABLE_CPU_FEATURES` turns off.
    fn detect() -> Self {
        let found = Self::detect_hardware();
        match std::env::var("KILN_DISABLE_CPU_FEATURES") {
            Ok(names) => found.without(&names),
            Err(_) => found,
        }
    }

    /// These features less the comma-separated `names` (as [`Self::names`] spells them, `amx`
    /// for both AMX features, or `all`); turning off a feature also turns off what builds on
    /// it (`avx512_bf16` takes `amx_bf16` with it, `avx512_vnni` takes `amx_int8`). Unknown
    /// names are ignored.
    pub fn without(mut self, names: &str) -> Self {
        for name in names.split(',').map(str::trim) {
            match name {
                "all" => self = Self::default(),
                "avx2+fma" => {
                    self.avx2_fma = false;
                    self.avx_vnni = false;
                    self.avx512 = false;
                    self.avx512_vnni = false;
                    self.avx512_bf16 = false;
                    self.amx_bf16 = false;
                    self.amx_int8 = false;
                }
                "avx512f+bw+vl" => {
                    self.avx512 = false;
                    self.avx512_vnni = false;
                    self.avx512_bf16 = false;
                    self.amx_bf16 = false;
                    self.amx_int8 = false;
                }
                "amx" => {
                    self.amx_bf16 = false;
                    self.amx_int8 = false;
                }
                "amx_bf16" => self.amx_bf16 = false,
                "amx_int8" => self.amx_int8 = false,
                "avx512_vnni" => {
                    self.avx512_vnni = false;
                    self.amx_int8 = false;
                }
                "avx_vnni" => self.avx_vnni = false,
                "avx512_bf16" => {
                    self.avx512_bf16 = false;
                    self.amx_bf16 = false;
                }
                _ => {}
            }
        }
        self
    }

    fn detect_hardware() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            let avx512 = is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512vl");
            Self {
                avx2_fma: is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
                avx512,
                avx512_vnni: avx512 && is_x86_feature_detected!("avx512vnni"),
                avx_vnni: is_x86_feature_detected!("avx2") && is_x86_feature_detected!("avxvnni"),
                avx512_bf16: avx512 && is_x86_feature_detected!("avx512bf16"),
                amx_bf16: false,
                amx_int8: false,
            }
            .with_amx()
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            Self::default()
        }
    }

    /// Adds AMX where the CPU has it, its AVX-512 companions are present (the kernels' edges
    /// use them) and the OS grants the tile state. Only asks the OS when the CPU has AMX.
    #[cfg(target_arch = "x86_64")]
    fn with_amx(mut self) -> Self {
        let (bf16, int8) = super::amx::cpu_has_amx();
        if self.avx512 && (bf16 || int8) && super::amx::request_permission() {
            self.amx_bf16 = bf16 && self.avx512_bf16;
            self.amx_int8 = int8 && self.avx512_vnni;
        }
        self
    }

    /// The names of the features present, as `/proc/cpuinfo` spells them.
    pub fn names(&self) -> Vec<&'static str> {
        [
            (self.avx2_fma, "avx2+fma"),
            (self.avx512, "avx512f+bw+vl"),
            (self.avx512_vnni, "avx512_vnni"),
            (self.avx_vnni, "avx_vnni"),
            (self.avx512_bf16, "avx512_bf16"),
            (self.amx_bf16, "amx_bf16"),
            (self.amx_int8, "amx_int8"),
        ]
        .into_iter()
        .filter_map(|(present, name)| present.then_some(name))
        .collect()
    }

    /// One short line: the features present, or `baseline x86-64` / `no SIMD kernels`.
    pub fn summary(&self) -> String {
        let names = self.names();
        if !names.is_empty() {
            names.join(" ")
        } else if cfg!(target_arch = "x86_64") {
            "baseline x86-64".to_string()
        } else {
            "portable kernels".to_string()
        }
    }
}

/// This CPU's features (detected on first use), less those named in the environment variable
/// `KILN_DISABLE_CPU_FEATURES` (comma-separated, e.g. `amx,avx512_bf16,avx512_vnni`): a way to run
/// and test the kernels an older CPU would take, like oneDNN's `ONEDNN_MAX_CPU_ISA`.
pub fn cpu_features() -> CpuFeatures {
    static FEATURES: OnceLock<CpuFeatures> = OnceLock::new();
    *FEATURES.get_or_init(CpuFeatures::detect)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn everything() -> CpuFeatures {
        CpuFeatures {
            avx2_fma: true,
            avx512: true,
            avx512_vnni: true,
            avx_vnni: true,
            avx512_bf16: true,
            amx_bf16: true,
            amx_int8: true,
        }
    }

    #[test]
    fn turning_a_feature_off_turns_off_what_builds_on_it() {
        let all = everything();
        let no_amx = all.without("amx");
        assert!(!no_amx.amx_bf16 && !no_amx.amx_int8);
        assert!(no_amx.avx512_bf16 && no_amx.avx512_vnni);
        assert!(!all.without("avx512_bf16").amx_bf16 && all.without("avx512_bf16").amx_int8);
        assert!(!all.without("avx512_vnni").amx_int8 && all.without("avx512_vnni").amx_bf16);
        assert_eq!(
            all.without("amx_int8"),
            CpuFeatures {
                amx_int8: false,
                ..all
            }
        );
        for base in ["avx2+fma", "avx512f+bw+vl"] {
            let off = all.without(base);
            assert!(!off.amx_bf16 && !off.amx_int8 && !off.avx512_bf16, "{base}");
        }
        assert_eq!(all.without("all"), CpuFeatures::default());
        assert_eq!(all.without("no-such-feature, "), all);
    }

    #[test]
    fn names_follow_proc_cpuinfo() {
        assert_eq!(
            everything().names(),
            [
                "avx2+fma",
                "avx512f+bw+vl",
                "avx512_vnni",
                "avx_vnni",
                "avx512_bf16",
                "amx_bf16",
                "amx_int8"
            ]
        );
        // Every name turns its own feature off.
        for name in everything().names() {
            assert!(
                !everything().without(name).names().contains(&name),
                "{name}"
            );
        }
    }

    #[test]
    fn amx_is_reported_only_with_the_avx512_kernels_it_relies_on() {
        let cpu = cpu_features();
        assert!(!cpu.amx_bf16 || cpu.avx512_bf16);
        assert!(!cpu.amx_int8 || cpu.avx512_vnni);
    }
}
