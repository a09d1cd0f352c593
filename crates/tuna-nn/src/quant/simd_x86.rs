//! `Simd` on x86-64: AVX-512 (one 512-bit register) and AVX2 + FMA + F16C (two 256-bit ones).
//!
//! These types are used only inside the `#[target_feature]` builds of `kernels.rs`, which run
//! after `Isa::supported` has checked the CPU; every method is `#[inline(always)]` so that it
//! is compiled into those builds. That is the safety argument of every `unsafe` block here:
//! the intrinsics' target features are present whenever the code runs.
//! The AVX-512 intrinsics are stable from Rust 1.89, the workspace's `rust-version`.

use super::simd::Simd;
use std::arch::x86_64::*;

/// Lanes 0..8 + lanes 4..8, then the same halving down to one value (the `Simd::sum` order
/// from its second step).
#[inline(always)]
unsafe fn sum8(v: __m256) -> f32 {
    let s4 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    let s1 = _mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1));
    _mm_cvtss_f32(s1)
}

/// One IEEE half as f32 with F16C's conversion.
#[inline(always)]
unsafe fn f16c(h: u16) -> f32 {
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h as i32)))
}

/// Four IEEE halves as f32 with one F16C conversion.
#[inline(always)]
unsafe fn f16c4(h: [u16; 4]) -> [f32; 4] {
    let bits =
        (h[0] as u64) | ((h[1] as u64) << 16) | ((h[2] as u64) << 32) | ((h[3] as u64) << 48);
    let mut out = [0f32; 4];
    _mm_storeu_ps(
        out.as_mut_ptr(),
        _mm_cvtph_ps(_mm_cvtsi64_si128(bits as i64)),
    );
    out
}

/// Prefetches every 64-byte line of `b` into the L1 cache.
#[inline(always)]
fn prefetch_lines(b: &[u8]) {
    for line in b.chunks(64) {
        // SAFETY: a prefetch never faults, and `line` is in bounds anyway.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(line.as_ptr() as *const i8) }
    }
}

/// The 128-bit quarters of `a` and `b` that `A` picks plus those that `B` picks.
#[inline(always)]
unsafe fn halve_quarters<const A: i32, const B: i32>(a: __m512, b: __m512) -> __m512 {
    _mm512_add_ps(
        _mm512_shuffle_f32x4::<A>(a, b),
        _mm512_shuffle_f32x4::<B>(a, b),
    )
}

/// Within each 128-bit lane: the lanes picked by `A` plus those picked by `B`.
#[inline(always)]
unsafe fn halve_lanes<const A: i32, const B: i32>(a: __m512, b: __m512) -> __m512 {
    _mm512_add_ps(_mm512_shuffle_ps::<A>(a, b), _mm512_shuffle_ps::<B>(a, b))
}

/// `Simd::sum` of each of 16 vectors, two vectors per instruction: each step adds halves
/// as `sum` does (lane j + j+8, then j+4, j+2, j+1) and pairs the partial sums of two
/// vectors in one register. The last step leaves vector `4t + l`'s total in lane `4l + t`;
/// one permutation puts it in lane `4t + l`.
#[inline(always)]
unsafe fn sum16_512(v: [__m512; 16]) -> [f32; 16] {
    let mut s8 = [_mm512_setzero_ps(); 8];
    for (i, s) in s8.iter_mut().enumerate() {
        // [a.q0 a.q1 b.q0 b.q1] + [a.q2 a.q3 b.q2 b.q3]: 8 lanes of each vector.
        *s = halve_quarters::<0b01_00_01_00, 0b11_10_11_10>(v[2 * i], v[2 * i + 1]);
    }
    let mut s4 = [_mm512_setzero_ps(); 4];
    for (i, s) in s4.iter_mut().enumerate() {
        // [a.q0 a.q2 b.q0 b.q2] + [a.q1 a.q3 b.q1 b.q3]: 4 lanes of each of four vectors.
        *s = halve_quarters::<0b10_00_10_00, 0b11_01_11_01>(s8[2 * i], s8[2 * i + 1]);
    }
    // Per 128-bit lane [a0 a1 b0 b1] + [a2 a3 b2 b3], then [a0 a2 b0 b2] + [a1 a3 b1 b3].
    let s2a = halve_lanes::<0b01_00_01_00, 0b11_10_11_10>(s4[0], s4[1]);
    let s2b = halve_lanes::<0b01_00_01_00, 0b11_10_11_10>(s4[2], s4[3]);
    let s1 = halve_lanes::<0b10_00_10_00, 0b11_01_11_01>(s2a, s2b);
    let order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    let mut out = [0f32; 16];
    _mm512_storeu_ps(out.as_mut_ptr(), _mm512_permutexvar_ps(order, s1));
    out
}

/// 16 f32 lanes in one AVX-512 register.
#[derive(Clone, Copy)]
pub(crate) struct Avx512(__m512);

impl Simd for Avx512 {
    #[inline(always)]
    fn zero() -> Self {
        Self(unsafe { _mm512_setzero_ps() })
    }
    #[inline(always)]
    fn splat(v: f32) -> Self {
        Self(unsafe { _mm512_set1_ps(v) })
    }
    #[inline(always)]
    fn load(x: &[f32]) -> Self {
        let x = &x[..16];
        Self(unsafe { _mm512_loadu_ps(x.as_ptr()) })
    }
    #[inline(always)]
    fn from_u8(b: &[u8; 16]) -> Self {
        unsafe {
            let v = _mm_loadu_si128(b.as_ptr() as *const __m128i);
            Self(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(v)))
        }
    }
    #[inline(always)]
    fn from_i8(b: &[u8; 16]) -> Self {
        unsafe {
            let v = _mm_loadu_si128(b.as_ptr() as *const __m128i);
            Self(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(v)))
        }
    }
    #[inline(always)]
    fn from_nibbles(b: &[u8; 16]) -> (Self, Self) {
        unsafe {
            let v = _mm512_cvtepu8_epi32(_mm_loadu_si128(b.as_ptr() as *const __m128i));
            let lo = _mm512_and_si512(v, _mm512_set1_epi32(15));
            let hi = _mm512_srli_epi32(v, 4);
            (Self(_mm512_cvtepi32_ps(lo)), Self(_mm512_cvtepi32_ps(hi)))
        }
    }
    #[inline(always)]
    fn nibble_weights(b: &[u8; 16], d: f32, c: f32) -> (Self, Self) {
        unsafe {
            // The 16 values `d * q + c` for q = 0..16, each rounded once as `madd` rounds;
            // the permutation reads only an index's low 4 bits, so the low nibbles need no
            // mask.
            let iota = _mm512_setr_ps(
                0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0,
                15.0,
            );
            let table = _mm512_fmadd_ps(iota, _mm512_set1_ps(d), _mm512_set1_ps(c));
            let v = _mm512_cvtepu8_epi32(_mm_loadu_si128(b.as_ptr() as *const __m128i));
            let lo = _mm512_permutexvar_ps(v, table);
            let hi = _mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), table);
            (Self(lo), Self(hi))
        }
    }
    #[inline(always)]
    fn sum16(v: [Self; 16]) -> [f32; 16] {
        let mut r = [unsafe { _mm512_setzero_ps() }; 16];
        for (ri, vi) in r.iter_mut().zip(v) {
            *ri = vi.0;
        }
        unsafe { sum16_512(r) }
    }
    #[inline(always)]
    fn prefetch(b: &[u8]) {
        prefetch_lines(b)
    }
    #[inline(always)]
    fn f16x4(h: [u16; 4]) -> [f32; 4] {
        unsafe { f16c4(h) }
    }
    #[inline(always)]
    fn f16(h: u16) -> f32 {
        unsafe { f16c(h) }
    }
    #[inline(always)]
    fn from_f16(b: &[u8]) -> Self {
        let b = &b[..32];
        unsafe {
            Self(_mm512_cvtph_ps(_mm256_loadu_si256(
                b.as_ptr() as *const __m256i
            )))
        }
    }
    #[inline(always)]
    fn from_bf16(b: &[u8]) -> Self {
        let b = &b[..32];
        unsafe {
            let v = _mm512_cvtepu16_epi32(_mm256_loadu_si256(b.as_ptr() as *const __m256i));
            Self(_mm512_castsi512_ps(_mm512_slli_epi32(v, 16)))
        }
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        Self(unsafe { _mm512_mul_ps(self.0, o.0) })
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        Self(unsafe { _mm512_add_ps(self.0, o.0) })
    }
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        Self(unsafe { _mm512_sub_ps(self.0, o.0) })
    }
    #[inline(always)]
    fn madd(self, b: Self, c: Self) -> Self {
        Self(unsafe { _mm512_fmadd_ps(self.0, b.0, c.0) })
    }
    #[inline(always)]
    fn madd1(a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }
    #[inline(always)]
    fn sum(self) -> f32 {
        unsafe {
            let lo = _mm512_castps512_ps256(self.0);
            let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(self.0), 1));
            sum8(_mm256_add_ps(lo, hi))
        }
    }
    #[inline(always)]
    fn store(self, out: &mut [f32]) {
        let out = &mut out[..16];
        unsafe { _mm512_storeu_ps(out.as_mut_ptr(), self.0) }
    }
}

/// 16 f32 lanes in two AVX2 registers (lanes 0..8, 8..16).
#[derive(Clone, Copy)]
pub(crate) struct Avx2(__m256, __m256);

/// 8 bfloat16 values as f32 (no closures here or below: each must be inlined into the
/// `#[target_feature]` build, and a closure might not be).
#[inline(always)]
unsafe fn bf16x8(v: __m128i) -> __m256 {
    _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(v), 16))
}

impl Simd for Avx2 {
    #[inline(always)]
    fn zero() -> Self {
        unsafe { Self(_mm256_setzero_ps(), _mm256_setzero_ps()) }
    }
    #[inline(always)]
    fn splat(v: f32) -> Self {
        unsafe { Self(_mm256_set1_ps(v), _mm256_set1_ps(v)) }
    }
    #[inline(always)]
    fn load(x: &[f32]) -> Self {
        let x = &x[..16];
        unsafe {
            Self(
                _mm256_loadu_ps(x.as_ptr()),
                _mm256_loadu_ps(x[8..].as_ptr()),
            )
        }
    }
    #[inline(always)]
    fn from_u8(b: &[u8; 16]) -> Self {
        unsafe {
            let v = _mm_loadu_si128(b.as_ptr() as *const __m128i);
            let lo = _mm256_cvtepu8_epi32(v);
            let hi = _mm256_cvtepu8_epi32(_mm_srli_si128(v, 8));
            Self(_mm256_cvtepi32_ps(lo), _mm256_cvtepi32_ps(hi))
        }
    }
    #[inline(always)]
    fn from_i8(b: &[u8; 16]) -> Self {
        unsafe {
            let v = _mm_loadu_si128(b.as_ptr() as *const __m128i);
            let lo = _mm256_cvtepi8_epi32(v);
            let hi = _mm256_cvtepi8_epi32(_mm_srli_si128(v, 8));
            Self(_mm256_cvtepi32_ps(lo), _mm256_cvtepi32_ps(hi))
        }
    }
    #[inline(always)]
    fn from_nibbles(b: &[u8; 16]) -> (Self, Self) {
        unsafe {
            let v = _mm_loadu_si128(b.as_ptr() as *const __m128i);
            let (v0, v1) = (
                _mm256_cvtepu8_epi32(v),
                _mm256_cvtepu8_epi32(_mm_srli_si128(v, 8)),
            );
            let m = _mm256_set1_epi32(15);
            let lo = Self(
                _mm256_cvtepi32_ps(_mm256_and_si256(v0, m)),
                _mm256_cvtepi32_ps(_mm256_and_si256(v1, m)),
            );
            let hi = Self(
                _mm256_cvtepi32_ps(_mm256_srli_epi32(v0, 4)),
                _mm256_cvtepi32_ps(_mm256_srli_epi32(v1, 4)),
            );
            (lo, hi)
        }
    }
    #[inline(always)]
    fn prefetch(b: &[u8]) {
        prefetch_lines(b)
    }
    #[inline(always)]
    fn f16x4(h: [u16; 4]) -> [f32; 4] {
        unsafe { f16c4(h) }
    }
    #[inline(always)]
    fn f16(h: u16) -> f32 {
        unsafe { f16c(h) }
    }
    #[inline(always)]
    fn from_f16(b: &[u8]) -> Self {
        let b = &b[..32];
        unsafe {
            let lo = _mm_loadu_si128(b.as_ptr() as *const __m128i);
            let hi = _mm_loadu_si128(b[16..].as_ptr() as *const __m128i);
            Self(_mm256_cvtph_ps(lo), _mm256_cvtph_ps(hi))
        }
    }
    #[inline(always)]
    fn from_bf16(b: &[u8]) -> Self {
        let b = &b[..32];
        unsafe {
            let lo = _mm_loadu_si128(b.as_ptr() as *const __m128i);
            let hi = _mm_loadu_si128(b[16..].as_ptr() as *const __m128i);
            Self(bf16x8(lo), bf16x8(hi))
        }
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        unsafe { Self(_mm256_mul_ps(self.0, o.0), _mm256_mul_ps(self.1, o.1)) }
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        unsafe { Self(_mm256_add_ps(self.0, o.0), _mm256_add_ps(self.1, o.1)) }
    }
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        unsafe { Self(_mm256_sub_ps(self.0, o.0), _mm256_sub_ps(self.1, o.1)) }
    }
    #[inline(always)]
    fn madd(self, b: Self, c: Self) -> Self {
        unsafe {
            Self(
                _mm256_fmadd_ps(self.0, b.0, c.0),
                _mm256_fmadd_ps(self.1, b.1, c.1),
            )
        }
    }
    #[inline(always)]
    fn madd1(a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }
    #[inline(always)]
    fn sum(self) -> f32 {
        unsafe { sum8(_mm256_add_ps(self.0, self.1)) }
    }
    #[inline(always)]
    fn store(self, out: &mut [f32]) {
        let out = &mut out[..16];
        unsafe {
            _mm256_storeu_ps(out.as_mut_ptr(), self.0);
            _mm256_storeu_ps(out[8..].as_mut_ptr(), self.1);
        }
    }
}
