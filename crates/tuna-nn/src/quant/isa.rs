//! Which instruction set the quantised kernels run with, chosen once at run time.
//!
//! The kernels are written once (`kernels.rs`) and compiled three times: with AVX-512, with
//! AVX2 + FMA, and with nothing beyond the target's baseline; with AVX-512 VNNI, the 32-weight
//! block types' decoding products run on integer dot products instead (`vnni.rs`). The best
//! set this CPU has is detected on first use and cached; nothing is chosen with compile-time
//! target features, so one x86-64 binary runs everywhere, and other targets build the
//! portable path only.

use std::sync::OnceLock;

/// An instruction set the kernels can be run with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// AVX-512 with VNNI: as `Avx512`, and the one- and few-row products of the 32-weight
    /// block types on integer dot products (inputs rounded to 16 bits, `vnni.rs`).
    Avx512Vnni,
    /// AVX-512 (F, BW, VL) with FMA and F16C, on 16-wide vectors.
    Avx512,
    /// AVX2 with FMA and F16C, on 8-wide vectors.
    Avx2,
    /// Plain Rust for any target, without fused multiply-add.
    Portable,
}

impl Isa {
    /// The best instruction set this CPU supports (detected once, then cached), or the one
    /// the environment variable `TUNA_ISA` names (`avx512-vnni`, `avx512`, `avx2`,
    /// `portable`) when this CPU has it: to compare the kernels in one binary.
    pub fn best() -> Isa {
        static BEST: OnceLock<Isa> = OnceLock::new();
        *BEST.get_or_init(|| {
            let all = Isa::available();
            let named = std::env::var("TUNA_ISA").ok();
            let named = named.and_then(|n| all.iter().copied().find(|isa| isa.name() == n));
            named.unwrap_or(all[0])
        })
    }

    /// Every instruction set this CPU supports, best first (always ends with `Portable`).
    pub fn available() -> Vec<Isa> {
        [Isa::Avx512Vnni, Isa::Avx512, Isa::Avx2, Isa::Portable]
            .into_iter()
            .filter(|isa| isa.supported())
            .collect()
    }

    /// True when this CPU can run kernels compiled for `self`.
    pub fn supported(self) -> bool {
        match self {
            Isa::Portable => true,
            Isa::Avx512Vnni => x86_has_avx512_vnni(),
            Isa::Avx512 => x86_has_avx512(),
            Isa::Avx2 => x86_has_avx2(),
        }
    }

    /// Lower-case name, for benchmarks and logs.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx512Vnni => "avx512-vnni",
            Isa::Avx512 => "avx512",
            Isa::Avx2 => "avx2",
            Isa::Portable => "portable",
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn x86_has_avx2() -> bool {
    is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c")
}

#[cfg(target_arch = "x86_64")]
fn x86_has_avx512() -> bool {
    x86_has_avx2()
        && is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vl")
}

#[cfg(target_arch = "x86_64")]
fn x86_has_avx512_vnni() -> bool {
    x86_has_avx512() && super::vnni::supported()
}

#[cfg(not(target_arch = "x86_64"))]
fn x86_has_avx512_vnni() -> bool {
    false
}

#[cfg(not(target_arch = "x86_64"))]
fn x86_has_avx2() -> bool {
    false
}

#[cfg(not(target_arch = "x86_64"))]
fn x86_has_avx512() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_is_available_and_portable_is_always_there() {
        let all = Isa::available();
        assert!(all.contains(&Isa::best()));
        assert_eq!(all.last(), Some(&Isa::Portable));
        assert!(all.iter().all(|isa| isa.supported()));
    }
}
