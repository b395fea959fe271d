//! The scale searches shared by ggml's quantizers (`ggml-quants.c`), ported operation for operation.
//!
//! Every function here reproduces the C reference bit for bit: the same float operations in the
//! same order, `f32` everywhere ggml uses `float`, divisions kept as divisions, no fused
//! multiply-add (Rust never contracts `a * b + c`), ggml's `nearest_int` (the `+ 1.5 * 2^23` trick,
//! which rounds half to even) and ggml's software `fp32 -> fp16` conversion. C integer conversions
//! (`int -> int8_t / uint8_t`, which wrap) are spelled `as i8` / `as u8`.
//!
//! Do not "simplify" an expression here: `w * x * l` is `(w * x) * l`, and `x * sl2 / slx` is
//! `(x * sl2) / slx`, exactly as C evaluates them.
// The encoders are line-by-line ports of ggml's C; index loops and explicit clamps mirror it.
#![allow(clippy::needless_range_loop, clippy::manual_clamp, clippy::assign_op_pattern, clippy::needless_late_init)]

/// ggml's `GROUP_MAX_EPS`.
pub const GROUP_MAX_EPS: f32 = 1e-15;

/// ggml's `nearest_int`: adds `1.5 * 2^23` and reads the low mantissa bits. For `|f| <= 4194303`
/// this is round-half-to-even; outside that range (where ggml only `assert`s) it returns the same
/// wrapped value as the C code compiled with `NDEBUG`.
#[inline(always)]
pub fn nearest_int(f: f32) -> i32 {
    let val = f + 12582912.0f32;
    (val.to_bits() as i32 & 0x007f_ffff) - 0x0040_0000
}

/// ggml's portable `ggml_compute_fp32_to_fp16` (what `GGML_FP32_TO_FP16` is in `ggml-quants.c`):
/// round to nearest even, overflow to infinity, NaN to `0x7E00` with the sign kept.
#[inline(always)]
pub fn fp32_to_fp16(f: f32) -> u16 {
    let scale_to_inf = f32::from_bits(0x7780_0000);
    let scale_to_zero = f32::from_bits(0x0880_0000);
    let mut base = (f.abs() * scale_to_inf) * scale_to_zero;
    let w = f.to_bits();
    let shl1_w = w.wrapping_add(w);
    let sign = w & 0x8000_0000;
    let mut bias = shl1_w & 0xFF00_0000;
    if bias < 0x7100_0000 {
        bias = 0x7100_0000;
    }
    base = f32::from_bits((bias >> 1) + 0x0780_0000) + base;
    let bits = base.to_bits();
    let exp_bits = (bits >> 13) & 0x0000_7C00;
    let mantissa_bits = bits & 0x0000_0FFF;
    let nonsign = exp_bits + mantissa_bits;
    ((sign >> 16) | if shl1_w > 0xFF00_0000 { 0x7E00 } else { nonsign }) as u16
}

/// `GGML_FP32_TO_FP16` followed by `GGML_FP16_TO_FP32`: the value a stored fp16 field reads back as.
#[inline(always)]
pub fn round_trip_fp16(f: f32) -> f32 {
    fp16_bits_to_f32(fp32_to_fp16(f))
}

/// C's float -> int conversion as x86-64 compilers emit it (`cvttss2si`): truncation toward zero,
/// and `i32::MIN` (the "integer indefinite") for NaN and out-of-range values. ggml's legacy
/// quantizers then keep the low byte (`(int8_t)` / `(uint8_t)`), which matters when a subnormal
/// scale makes `1/d` infinite. (Rust's `as i32` saturates instead.)
#[inline(always)]
pub fn cvtt(f: f32) -> i32 {
    if (-2147483648.0..2147483648.0).contains(&f) {
        f as i32
    } else {
        i32::MIN
    }
}

/// Stores `GGML_FP32_TO_FP16(v)` little-endian at `y[off..off + 2]` and returns the value it
/// reads back as (`GGML_FP16_TO_FP32`).
#[inline(always)]
pub fn put_f16(y: &mut [u8], off: usize, v: f32) -> f32 {
    let h = fp32_to_fp16(v);
    y[off..off + 2].copy_from_slice(&h.to_le_bytes());
    fp16_bits_to_f32(h)
}

/// IEEE binary16 bits to f32, exactly (the same values as `formats::fp16_to_f32`), in plain
/// integer code that inlines (the `half` crate's conversion checks the CPU on every call).
#[inline(always)]
pub fn fp16_bits_to_f32(h: u16) -> f32 {
    let sign = ((h as u32) & 0x8000) << 16;
    let exp = ((h >> 10) & 0x1f) as u32;
    let man = (h & 0x3ff) as u32;
    if exp == 0x1f {
        f32::from_bits(sign | 0x7f80_0000 | (man << 13))
    } else if exp == 0 {
        // Zero or subnormal: man * 2^-24, exact.
        f32::from_bits(sign | (man as f32 * (1.0 / 16_777_216.0)).to_bits())
    } else {
        f32::from_bits(sign | ((exp + 112) << 23) | (man << 13))
    }
}

/// Sum of squares in index order (ggml's `sum_x2 += x[i]*x[i]` loops).
#[inline(always)]
pub fn sum_sq(x: &[f32]) -> f32 {
    let mut s = 0f32;
    for &v in x {
        s += v * v;
    }
    s
}

/// C's `fabsf`.
#[inline(always)]
fn fabsf(x: f32) -> f32 {
    x.abs()
}

/// ggml's `make_qx_quants` (symmetric quants with a sign-carrying scale). `L` receives
/// `nmax + clamp(l, -nmax, nmax - 1)`. `qw = None` is C's `NULL` (then `rmse_type` picks the
/// weights).
#[allow(non_snake_case)]
pub fn make_qx_quants(n: usize, nmax: i32, x: &[f32], L: &mut [i8], mut rmse_type: i32, qw: Option<&[f32]>) -> f32 {
    let x = &x[..n];
    let L = &mut L[..n];
    let mut max = 0f32;
    let mut amax = 0f32;
    for &xi in x {
        let ax = fabsf(xi);
        if ax > amax {
            amax = ax;
            max = xi;
        }
    }
    if amax < GROUP_MAX_EPS {
        L.fill(0);
        return 0.0;
    }
    let nmaxf = nmax as f32;
    let mut iscale = (-nmax) as f32 / max;
    if rmse_type == 0 {
        for i in 0..n {
            let l = nearest_int(iscale * x[i]);
            L[i] = (nmax + l.min(nmax - 1).max(-nmax)) as i8;
        }
        return 1.0 / iscale;
    }
    let mut return_early = false;
    if rmse_type < 0 {
        rmse_type = -rmse_type;
        return_early = true;
    }
    let weight = |i: usize| -> f32 {
        match qw {
            Some(q) => q[i],
            None => match rmse_type {
                1 => x[i] * x[i],
                2 => 1.0,
                3 => fabsf(x[i]),
                _ => fabsf(x[i]).sqrt(),
            },
        }
    };
    let mut sumlx = 0f32;
    let mut suml2 = 0f32;
    for i in 0..n {
        let l = nearest_int(iscale * x[i]).min(nmax - 1).max(-nmax);
        L[i] = (l + nmax) as i8;
        let w = weight(i);
        let lf = l as f32;
        sumlx += w * x[i] * lf;
        suml2 += w * lf * lf;
    }
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    if return_early {
        return if suml2 > 0.0 { 0.5f32 * (scale + 1.0 / iscale) } else { 1.0 / iscale };
    }
    let mut best = scale * sumlx;
    for is in -9i32..=9 {
        if is == 0 {
            continue;
        }
        iscale = -(nmaxf + 0.1f32 * is as f32) / max;
        sumlx = 0.0;
        suml2 = 0.0;
        for i in 0..n {
            let l = nearest_int(iscale * x[i]).min(nmax - 1).max(-nmax);
            let w = weight(i);
            let lf = l as f32;
            sumlx += w * x[i] * lf;
            suml2 += w * lf * lf;
        }
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            for i in 0..n {
                let l = nearest_int(iscale * x[i]);
                L[i] = (nmax + l.min(nmax - 1).max(-nmax)) as i8;
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// ggml's `make_q3_quants`. `L` receives `nmax + l`.
#[allow(non_snake_case)]
pub fn make_q3_quants(n: usize, nmax: i32, x: &[f32], L: &mut [i8], do_rmse: bool) -> f32 {
    let x = &x[..n];
    let L = &mut L[..n];
    let mut max = 0f32;
    let mut amax = 0f32;
    for &xi in x {
        let ax = fabsf(xi);
        if ax > amax {
            amax = ax;
            max = xi;
        }
    }
    if amax < GROUP_MAX_EPS {
        L.fill(0);
        return 0.0;
    }
    let iscale = (-nmax) as f32 / max;
    if do_rmse {
        let mut sumlx = 0f32;
        let mut suml2 = 0f32;
        for i in 0..n {
            let l = nearest_int(iscale * x[i]).min(nmax - 1).max(-nmax);
            L[i] = l as i8;
            let w = x[i] * x[i];
            let lf = l as f32;
            sumlx += w * x[i] * lf;
            suml2 += w * lf * lf;
        }
        for _itry in 0..5 {
            let mut n_changed = 0;
            for i in 0..n {
                let w = x[i] * x[i];
                let li = L[i] as f32;
                let mut slx = sumlx - w * x[i] * li;
                if slx > 0.0 {
                    let mut sl2 = suml2 - w * li * li;
                    let new_l = nearest_int(x[i] * sl2 / slx).min(nmax - 1).max(-nmax);
                    if new_l != L[i] as i32 {
                        let nl = new_l as f32;
                        slx += w * x[i] * nl;
                        sl2 += w * nl * nl;
                        if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                            L[i] = new_l as i8;
                            sumlx = slx;
                            suml2 = sl2;
                            n_changed += 1;
                        }
                    }
                }
            }
            if n_changed == 0 {
                break;
            }
        }
        for l in L.iter_mut() {
            *l = l.wrapping_add(nmax as i8);
        }
        return if suml2 > 0.0 { sumlx / suml2 } else { 0.0 };
    }
    for i in 0..n {
        let l = nearest_int(iscale * x[i]).min(nmax - 1).max(-nmax);
        L[i] = (l + nmax) as i8;
    }
    1.0 / iscale
}

/// ggml's `make_qkx2_quants` (asymmetric quants `scale * L - the_min`, weighted search over
/// `nstep + 1` scales). Returns the scale; `the_min` receives `-min` (>= 0).
#[allow(non_snake_case, clippy::too_many_arguments)]
pub fn make_qkx2_quants(
    n: usize,
    nmax: i32,
    x: &[f32],
    weights: &[f32],
    L: &mut [u8],
    the_min: &mut f32,
    Laux: &mut [u8],
    rmin: f32,
    rdelta: f32,
    nstep: i32,
    use_mad: bool,
) -> f32 {
    let x = &x[..n];
    let weights = &weights[..n];
    let L = &mut L[..n];
    let Laux = &mut Laux[..n];
    let mut min = x[0];
    let mut max = x[0];
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        let w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        L.fill(0);
        *the_min = -min;
        return 0.0;
    }
    let nmaxf = nmax as f32;
    let mut iscale = nmaxf / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_error = 0f32;
    for i in 0..n {
        let l = nearest_int(iscale * (x[i] - min));
        L[i] = l.min(nmax).max(0) as u8;
        let mut diff = scale * L[i] as f32 + min - x[i];
        diff = if use_mad { fabsf(diff) } else { diff * diff };
        let w = weights[i];
        best_error += w * diff;
    }
    if nstep < 1 {
        *the_min = -min;
        return scale;
    }
    for is in 0..=nstep {
        iscale = (rmin + rdelta * is as f32 + nmaxf) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0f32, 0f32, 0f32);
        for i in 0..n {
            let l = nearest_int(iscale * (x[i] - min)).min(nmax).max(0);
            Laux[i] = l as u8;
            let w = weights[i];
            let lf = l as f32;
            sum_l += w * lf;
            sum_l2 += w * lf * lf;
            sum_xl += w * lf * x[i];
        }
        let d = sum_w * sum_l2 - sum_l * sum_l;
        if d > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / d;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / d;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut cur_error = 0f32;
            for i in 0..n {
                let mut diff = this_scale * Laux[i] as f32 + this_min - x[i];
                diff = if use_mad { fabsf(diff) } else { diff * diff };
                let w = weights[i];
                cur_error += w * diff;
            }
            if cur_error < best_error {
                L.copy_from_slice(Laux);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    scale
}

/// ggml's `make_qkx3_quants` (as [`make_qkx2_quants`], used by the importance-weighted
/// quantizers); `weights = None` is C's `NULL` (weights `x^2`).
#[allow(non_snake_case, clippy::too_many_arguments)]
pub fn make_qkx3_quants(
    n: usize,
    nmax: i32,
    x: &[f32],
    weights: Option<&[f32]>,
    L: &mut [u8],
    the_min: &mut f32,
    Laux: &mut [u8],
    rmin: f32,
    rdelta: f32,
    nstep: i32,
    use_mad: bool,
) -> f32 {
    let x = &x[..n];
    let L = &mut L[..n];
    let Laux = &mut Laux[..n];
    let wt = |i: usize| -> f32 {
        match weights {
            Some(w) => w[i],
            None => x[i] * x[i],
        }
    };
    let mut min = x[0];
    let mut max = x[0];
    let mut sum_w = wt(0);
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        let w = wt(i);
        sum_w += w;
        sum_x += w * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max <= min {
        L.fill(0);
        *the_min = -min;
        return 0.0;
    }
    let nmaxf = nmax as f32;
    let mut iscale = nmaxf / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_mad = 0f32;
    for i in 0..n {
        let l = nearest_int(iscale * (x[i] - min));
        L[i] = l.min(nmax).max(0) as u8;
        let mut diff = scale * L[i] as f32 + min - x[i];
        diff = if use_mad { fabsf(diff) } else { diff * diff };
        best_mad += wt(i) * diff;
    }
    if nstep < 1 {
        *the_min = -min;
        return scale;
    }
    for is in 0..=nstep {
        iscale = (rmin + rdelta * is as f32 + nmaxf) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0f32, 0f32, 0f32);
        for i in 0..n {
            let v = iscale * (x[i] - min);
            let l = if v > 0.0 { nearest_int(if v < nmaxf { v } else { nmaxf }) } else { 0 };
            Laux[i] = l as u8;
            let w = wt(i);
            let lf = l as f32;
            sum_l += w * lf;
            sum_l2 += w * lf * lf;
            sum_xl += w * lf * x[i];
        }
        let d = sum_w * sum_l2 - sum_l * sum_l;
        if d > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / d;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / d;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut mad = 0f32;
            for i in 0..n {
                let mut diff = this_scale * Laux[i] as f32 + this_min - x[i];
                diff = if use_mad { fabsf(diff) } else { diff * diff };
                mad += wt(i) * diff;
            }
            if mad < best_mad {
                L.copy_from_slice(Laux);
                best_mad = mad;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    scale
}

/// ggml's `make_qp_quants` (non-negative quants of non-negative values, used for the scales of the
/// importance-weighted K-quants).
#[allow(non_snake_case)]
pub fn make_qp_quants(n: usize, nmax: i32, x: &[f32], L: &mut [u8], quant_weights: &[f32]) -> f32 {
    let x = &x[..n];
    let L = &mut L[..n];
    let qw = &quant_weights[..n];
    let mut max = 0f32;
    for &xi in x {
        // C's MAX(max, x[i]) is `max > x ? max : x`.
        max = if max > xi { max } else { xi };
    }
    if max < GROUP_MAX_EPS {
        L.fill(0);
        return 0.0;
    }
    let nmaxf = nmax as f32;
    let mut iscale = nmaxf / max;
    for i in 0..n {
        L[i] = nearest_int(iscale * x[i]) as u8;
    }
    let scale = 1.0 / iscale;
    let mut best_mse = 0f32;
    for i in 0..n {
        let diff = x[i] - scale * L[i] as f32;
        let w = qw[i];
        best_mse += w * diff * diff;
    }
    for is in -4i32..=4 {
        if is == 0 {
            continue;
        }
        let iscale_is = (0.1f32 * is as f32 + nmaxf) / max;
        let scale_is = 1.0 / iscale_is;
        let mut mse = 0f32;
        for i in 0..n {
            let l = nearest_int(iscale_is * x[i]).min(nmax);
            let diff = x[i] - scale_is * l as f32;
            let w = qw[i];
            mse += w * diff * diff;
        }
        if mse < best_mse {
            best_mse = mse;
            iscale = iscale_is;
        }
    }
    let mut sumlx = 0f32;
    let mut suml2 = 0f32;
    for i in 0..n {
        let l = nearest_int(iscale * x[i]).min(nmax);
        L[i] = l as u8;
        let w = qw[i];
        let lf = l as f32;
        sumlx += w * x[i] * lf;
        suml2 += w * lf * lf;
    }
    for _itry in 0..5 {
        let mut n_changed = 0;
        for i in 0..n {
            let w = qw[i];
            let li = L[i] as f32;
            let mut slx = sumlx - w * x[i] * li;
            let mut sl2 = suml2 - w * li * li;
            if slx > 0.0 && sl2 > 0.0 {
                let new_l = nearest_int(x[i] * sl2 / slx).min(nmax);
                if new_l != L[i] as i32 {
                    let nl = new_l as f32;
                    slx += w * x[i] * nl;
                    sl2 += w * nl * nl;
                    if slx * slx * suml2 > sumlx * sumlx * sl2 {
                        L[i] = new_l as u8;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed += 1;
                    }
                }
            }
        }
        if n_changed == 0 {
            break;
        }
    }
    if suml2 > 0.0 {
        sumlx / suml2
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_int_rounds_half_to_even() {
        assert_eq!(nearest_int(0.5), 0);
        assert_eq!(nearest_int(1.5), 2);
        assert_eq!(nearest_int(2.5), 2);
        assert_eq!(nearest_int(-0.5), 0);
        assert_eq!(nearest_int(-1.5), -2);
        assert_eq!(nearest_int(-2.4999998), -2);
        assert_eq!(nearest_int(4194303.0), 4194303);
    }

    #[test]
    fn fp16_bits_to_f32_is_exact() {
        for h in 0..=u16::MAX {
            assert_eq!(fp16_bits_to_f32(h).to_bits(), super::super::fp16_to_f32(h).to_bits(), "{h:#06x}");
        }
    }

    #[test]
    fn fp16_conversion_matches_round_to_nearest_even() {
        let mut s = 0x1234_5678u32;
        for _ in 0..200_000 {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            let f = f32::from_bits(s);
            let ours = fp32_to_fp16(f);
            if f.is_nan() {
                assert_eq!(ours & 0x7FFF, 0x7E00);
            } else {
                assert_eq!(ours, half::f16::from_f32(f).to_bits(), "{f:e}");
            }
        }
    }
}
