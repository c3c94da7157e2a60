//! Matmul of every tier against its scalar twin and a float64 reference.

mod common;

use std::sync::Arc;

use common::*;
use jclip_kernels::{Activation, Epilogue, Kernels, PACKED_ALIGN, PackError, PackedMatrix, WeightFormat};

/// Absolute error allowed for an activation on top of the sum's error, per
/// unit of |input| (the erf approximation and the f32 evaluation).
const ACTIVATION_TOLERANCE: f64 = 1e-6;
/// Largest slope of GELU and SiLU, by which an input error can grow.
const ACTIVATION_SLOPE: f64 = 1.13;
/// Largest relative error of rounding an f32 to bfloat16 (8 significant
/// bits, round to nearest): half a unit in the last place, 2⁻⁸.
const BF16_ROUNDING: f64 = 1.0 / 256.0;

fn gelu_f64(x: f64) -> f64 {
    0.5 * x * (1.0 + erf_f64(x / std::f64::consts::SQRT_2))
}

fn silu_f64(x: f64) -> f64 {
    x / (1.0 + (-x).exp())
}

fn activate_f64(activation: Activation, x: f64) -> f64 {
    match activation {
        Activation::Identity => x,
        Activation::Gelu => gelu_f64(x),
        Activation::Silu => silu_f64(x),
    }
}

/// One linear call to check.
#[derive(Clone, Copy, Debug)]
struct Case {
    rows: usize,
    n: usize,
    k: usize,
    format: WeightFormat,
    bias: bool,
    activation: Activation,
    residual: bool,
    offset: usize,
}

impl Case {
    fn plain(rows: usize, n: usize, k: usize) -> Case {
        Case {
            rows,
            n,
            k,
            format: WeightFormat::F32,
            bias: false,
            activation: Activation::Identity,
            residual: false,
            offset: 0,
        }
    }
}

/// Inputs of a case: x, W, bias, residual.
struct Inputs {
    x: Vec<f32>,
    w: Vec<f32>,
    bias: Vec<f32>,
    residual: Vec<f32>,
}

fn inputs(case: &Case, seed: u64) -> Inputs {
    Inputs {
        x: values(case.rows * case.k, seed),
        w: values(case.n * case.k, seed + 1),
        bias: values(case.n, seed + 2),
        residual: values(case.rows * case.n, seed + 3),
    }
}

/// Runs `linear` with every input and the output at `case.offset` inside
/// NaN-filled buffers, checks that nothing outside the output changed, and
/// returns the output.
fn run_linear(kernels: &Kernels, case: &Case, inputs: &Inputs, packed: &PackedMatrix) -> Vec<f32> {
    let offset = case.offset;
    let x = placed(&inputs.x, offset);
    let bias = placed(&inputs.bias, offset);
    let residual = placed(&inputs.residual, offset);
    let len = case.rows * case.n;
    let mut y = vec![f32::NAN; offset + len + 5];
    let epilogue = Epilogue {
        bias: case.bias.then(|| &bias[offset..offset + case.n]),
        activation: case.activation,
        residual: case.residual.then(|| &residual[offset..offset + len]),
    };
    kernels.linear(&x[offset..offset + inputs.x.len()], case.rows, packed, epilogue, &mut y[offset..offset + len]);
    assert!(y[..offset].iter().chain(&y[offset + len..]).all(|v| v.is_nan()), "{case:?}: wrote outside the output");
    y[offset..offset + len].to_vec()
}

/// Returns the exact result of a case in f64 and its tolerance, per element,
/// using the weights as stored (rounded to the format). `x_rounding` is the
/// relative error of each activation as the kernels read it: 0 for f32, or
/// [`BF16_ROUNDING`] where a tier rounds activations to bfloat16.
fn reference(case: &Case, inputs: &Inputs, packed: &PackedMatrix, x_rounding: f64) -> Vec<(f64, f64)> {
    let (rows, n, k) = (case.rows, case.n, case.k);
    let mut result = Vec::with_capacity(rows * n);
    for r in 0..rows {
        for c in 0..n {
            let mut sum = 0.0f64;
            let mut magnitude = 0.0f64;
            for kk in 0..k {
                let term = inputs.x[r * k + kk] as f64 * packed.get(c, kk) as f64;
                sum += term;
                magnitude += term.abs();
            }
            let mut tolerance = sum_tolerance(k, magnitude) + x_rounding * magnitude;
            if case.bias {
                sum += inputs.bias[c] as f64;
                tolerance += f32::EPSILON as f64 * sum.abs();
            }
            if case.activation != Activation::Identity {
                tolerance = ACTIVATION_SLOPE * tolerance + ACTIVATION_TOLERANCE * sum.abs().max(1.0);
            }
            let mut value = activate_f64(case.activation, sum);
            if case.residual {
                value += inputs.residual[r * n + c] as f64;
                tolerance += f32::EPSILON as f64 * value.abs();
            }
            result.push((value, tolerance));
        }
    }
    result
}

/// Checks every tier on `case`: each against the f64 reference, each SIMD
/// tier against its scalar twin.
fn check_case(case: Case, seed: u64) {
    let inputs = inputs(&case, seed);
    let packed = PackedMatrix::from_f32_as(case.format, &inputs.w, case.n, case.k);
    let expected = reference(&case, &inputs, &packed, 0.0);
    let scalar = run_linear(&Kernels::scalar(), &case, &inputs, &packed);
    for kernels in all_tiers() {
        if kernels.bf16_dot() && case.format == WeightFormat::BF16 {
            check_bf16_dot(&kernels, &case, &inputs, &packed);
            continue;
        }
        let got = run_linear(&kernels, &case, &inputs, &packed);
        for (i, (&value, &(want, tolerance))) in got.iter().zip(&expected).enumerate() {
            let (row, col) = (i / case.n.max(1), i % case.n.max(1));
            assert!(
                (value as f64 - want).abs() <= tolerance,
                "{} {case:?} y[{row}][{col}] = {value}, expected {want} ± {tolerance}",
                kernels.isa()
            );
            assert!(
                (value as f64 - scalar[i] as f64).abs() <= 2.0 * tolerance,
                "{} {case:?} y[{row}][{col}] = {value}, scalar twin {} (± 2·{tolerance})",
                kernels.isa(),
                scalar[i]
            );
        }
    }
}

/// Checks a bf16 dot-product tier on a BF16 case: it and its scalar twin
/// against the f64 reference with the activations' bf16 rounding in the
/// tolerance, and the tier against the twin, bit for bit up to the
/// activation function, whose SIMD and scalar forms differ in the last bits.
fn check_bf16_dot(kernels: &Kernels, case: &Case, inputs: &Inputs, packed: &PackedMatrix) {
    let expected = reference(case, inputs, packed, BF16_ROUNDING);
    let twin = run_linear(&kernels.scalar_twin(), case, inputs, packed);
    let got = run_linear(kernels, case, inputs, packed);
    for (i, &(want, tolerance)) in expected.iter().enumerate() {
        let (row, col) = (i / case.n.max(1), i % case.n.max(1));
        let (value, twin_value) = (got[i], twin[i]);
        assert!(
            (twin_value as f64 - want).abs() <= tolerance,
            "scalar twin of {} {case:?} y[{row}][{col}] = {twin_value}, expected {want} ± {tolerance}",
            kernels.isa()
        );
        assert!(
            (value as f64 - want).abs() <= tolerance,
            "{} {case:?} y[{row}][{col}] = {value}, expected {want} ± {tolerance}",
            kernels.isa()
        );
        if case.activation == Activation::Identity {
            assert_eq!(
                value.to_bits(),
                twin_value.to_bits(),
                "{} {case:?} y[{row}][{col}] = {value}, scalar twin {twin_value}",
                kernels.isa()
            );
        } else {
            let twin_tolerance = ACTIVATION_TOLERANCE * (twin_value as f64).abs().max(1.0);
            assert!(
                (value as f64 - twin_value as f64).abs() <= twin_tolerance,
                "{} {case:?} y[{row}][{col}] = {value}, scalar twin {twin_value} ± {twin_tolerance}",
                kernels.isa()
            );
        }
    }
}

#[test]
fn linear_sweeps_rows() {
    for (index, &rows) in SWEEP.iter().enumerate() {
        let case = Case { offset: OFFSETS[index % OFFSETS.len()], ..Case::plain(rows, 33, 65) };
        check_case(case, index as u64);
    }
}

#[test]
fn linear_sweeps_outputs() {
    for (index, &n) in SWEEP.iter().chain(&[16, 47, 48, 49, 64, 65]).enumerate() {
        let case = Case { offset: OFFSETS[index % OFFSETS.len()], ..Case::plain(17, n, 63) };
        check_case(case, 100 + index as u64);
    }
}

#[test]
fn linear_sweeps_reduction() {
    for (index, &k) in SWEEP.iter().chain(&[255, 256, 257, 300, 513]).enumerate() {
        let case = Case { offset: OFFSETS[index % OFFSETS.len()], ..Case::plain(9, 35, k) };
        check_case(case, 200 + index as u64);
    }
}

#[test]
fn linear_half_precision_weights() {
    for format in [WeightFormat::F16, WeightFormat::BF16] {
        for (index, &(rows, n, k)) in
            [(1, 17, 65), (9, 35, 257), (33, 49, 129), (65, 16, 7), (3, 1, 0)].iter().enumerate()
        {
            let case = Case { format, offset: OFFSETS[index % OFFSETS.len()], bias: true, ..Case::plain(rows, n, k) };
            check_case(case, 300 + index as u64);
        }
    }
}

#[test]
fn linear_bf16_sweeps_shapes() {
    let shapes = SWEEP
        .iter()
        .map(|&rows| (rows, 33, 65))
        .chain(SWEEP.iter().map(|&n| (17, n, 63)))
        .chain(SWEEP.iter().chain(&[255, 256, 257, 300, 513]).map(|&k| (9, 35, k)));
    for (index, (rows, n, k)) in shapes.enumerate() {
        let case = Case {
            format: WeightFormat::BF16,
            offset: OFFSETS[index % OFFSETS.len()],
            bias: index % 2 == 0,
            ..Case::plain(rows, n, k)
        };
        check_case(case, 1000 + index as u64);
    }
}

#[test]
fn linear_bf16_fused_epilogues() {
    let activations = [Activation::Identity, Activation::Gelu, Activation::Silu];
    for (index, &(rows, n, k)) in [(1, 7, 3), (17, 33, 65), (31, 65, 301), (8, 48, 256), (65, 17, 0)].iter().enumerate()
    {
        for (a, &activation) in activations.iter().enumerate() {
            for residual in [false, true] {
                let case = Case {
                    format: WeightFormat::BF16,
                    bias: true,
                    activation,
                    residual,
                    offset: OFFSETS[(index + a) % OFFSETS.len()],
                    ..Case::plain(rows, n, k)
                };
                check_case(case, 1100 + index as u64);
            }
        }
    }
}

#[test]
fn linear_bf16_model_sized_shape() {
    check_case(Case { format: WeightFormat::BF16, bias: true, ..Case::plain(197, 64, 768) }, 1200);
}

#[test]
fn linear_fused_epilogues() {
    let activations = [Activation::Identity, Activation::Gelu, Activation::Silu];
    for (index, &(rows, n, k)) in [(1, 7, 3), (17, 33, 65), (31, 65, 300), (8, 48, 256), (65, 17, 0)].iter().enumerate()
    {
        for (a, &activation) in activations.iter().enumerate() {
            for residual in [false, true] {
                let case = Case {
                    bias: true,
                    activation,
                    residual,
                    offset: OFFSETS[(index + a) % OFFSETS.len()],
                    ..Case::plain(rows, n, k)
                };
                check_case(case, 400 + index as u64);
            }
        }
    }
}

#[test]
fn linear_model_sized_shape() {
    check_case(Case { bias: true, ..Case::plain(197, 64, 768) }, 500);
}

#[test]
fn linear_input_copied_per_tile() {
    // X larger than SHARED_PACK_MAX_BYTES is copied by each tile, one
    // reduction block at a time: all of k = 2050 over f32 weights, blocks
    // of KC over f16 weights, the last one partial. 2053 rows leave a
    // partial row group.
    let (rows, k) = (2053, 2050);
    assert!(rows * k * 4 > jclip_kernels::matmul::SHARED_PACK_MAX_BYTES);
    assert!(!k.is_multiple_of(jclip_kernels::matmul::KC));
    for (format, n) in [(WeightFormat::F16, 17), (WeightFormat::F32, 3)] {
        check_case(Case { bias: true, offset: 3, format, ..Case::plain(rows, n, k) }, 510);
    }
}

#[test]
fn linear_f32_reduction_in_blocks() {
    // k beyond F32_KC_MAX splits f32 weights into two reduction blocks; 29
    // rows make four row groups, enough for the calls to prefetch the next
    // panel group, and 97 outputs leave a partial panel group.
    let k = jclip_kernels::matmul::F32_KC_MAX + 5;
    check_case(Case { bias: true, offset: 1, ..Case::plain(29, 97, k) }, 520);
}

/// Runs `linear_gated` at `offset` inside NaN-filled buffers.
#[allow(clippy::too_many_arguments)]
fn run_gated(
    kernels: &Kernels,
    x: &[f32],
    rows: usize,
    gate: &PackedMatrix,
    value: &PackedMatrix,
    biases: (&[f32], &[f32]),
    activation: Activation,
    offset: usize,
) -> Vec<f32> {
    let len = rows * gate.n();
    let x = placed(x, offset);
    let mut y = vec![f32::NAN; offset + len + 2];
    let input = &x[offset..offset + rows * gate.k()];
    let output = &mut y[offset..offset + len];
    kernels.linear_gated(input, rows, gate, Some(biases.0), value, Some(biases.1), activation, output);
    assert!(y[..offset].iter().chain(&y[offset + len..]).all(|v| v.is_nan()), "wrote outside the output");
    y[offset..offset + len].to_vec()
}

#[test]
fn gated_matches_reference_and_scalar() {
    let shapes = [(1, 1, 1), (3, 17, 7), (17, 33, 65), (65, 16, 300), (7, 65, 0), (129, 31, 33)];
    for (index, &(rows, n, k)) in shapes.iter().enumerate() {
        for (format, activation) in [(WeightFormat::F32, Activation::Gelu), (WeightFormat::BF16, Activation::Silu)] {
            let seed = 600 + index as u64;
            let x = values(rows * k, seed);
            let (g, v) = (values(n * k, seed + 1), values(n * k, seed + 2));
            let (gate_bias, value_bias) = (values(n, seed + 3), values(n, seed + 4));
            let gate = PackedMatrix::from_f32_as(format, &g, n, k);
            let value = PackedMatrix::from_f32_as(format, &v, n, k);
            let offset = OFFSETS[index % OFFSETS.len()];
            let biases = (&gate_bias[..], &value_bias[..]);
            let scalar = run_gated(&Kernels::scalar(), &x, rows, &gate, &value, biases, activation, offset);
            for kernels in all_tiers() {
                // A bf16 dot-product tier rounds the activations to bf16 and
                // is compared with its own scalar twin.
                let dot = kernels.bf16_dot() && format == WeightFormat::BF16;
                let x_rounding = if dot { BF16_ROUNDING } else { 0.0 };
                let twin = if dot {
                    run_gated(&kernels.scalar_twin(), &x, rows, &gate, &value, biases, activation, offset)
                } else {
                    scalar.clone()
                };
                let got = run_gated(&kernels, &x, rows, &gate, &value, biases, activation, offset);
                for r in 0..rows {
                    for c in 0..n {
                        let (mut gs, mut gm, mut vs, mut vm) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
                        for kk in 0..k {
                            let xv = x[r * k + kk] as f64;
                            gs += xv * gate.get(c, kk) as f64;
                            gm += (xv * gate.get(c, kk) as f64).abs();
                            vs += xv * value.get(c, kk) as f64;
                            vm += (xv * value.get(c, kk) as f64).abs();
                        }
                        let (gs, vs) = (gs + gate_bias[c] as f64, vs + value_bias[c] as f64);
                        let gate_out = activate_f64(activation, gs);
                        let gate_error = ACTIVATION_SLOPE * (sum_tolerance(k, gm + gs.abs()) + x_rounding * gm)
                            + ACTIVATION_TOLERANCE * gs.abs().max(1.0);
                        let value_error = sum_tolerance(k, vm + vs.abs()) + x_rounding * vm;
                        let tolerance = gate_error * vs.abs() + value_error * gate_out.abs() + gate_error * value_error;
                        let want = gate_out * vs;
                        let (value_got, twin_got) = (got[r * n + c] as f64, twin[r * n + c] as f64);
                        let tolerance = tolerance + f32::EPSILON as f64 * want.abs();
                        assert!(
                            (value_got - want).abs() <= tolerance,
                            "{} gated {rows}×{n}×{k} {format} y[{r}][{c}] = {value_got}, expected {want} ± {tolerance}",
                            kernels.isa()
                        );
                        // Identical sums; the activations differ in the last bits.
                        let twin_tolerance = if dot {
                            ACTIVATION_TOLERANCE * gs.abs().max(1.0) * vs.abs().max(1.0)
                                + f32::EPSILON as f64 * want.abs()
                        } else {
                            2.0 * tolerance
                        };
                        assert!(
                            (value_got - twin_got).abs() <= twin_tolerance,
                            "{} gated {rows}×{n}×{k} {format} y[{r}][{c}] = {value_got}, scalar twin {twin_got}",
                            kernels.isa()
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn residual_added_after_activation() {
    let w = [1.0f32, 0.0, 0.0, 1.0];
    let packed = PackedMatrix::from_f32(&w, 2, 2);
    let x = [-1.0f32, 2.0];
    let bias = [0.5f32, 0.5];
    let residual = [10.0f32, 20.0];
    let epilogue = Epilogue { bias: Some(&bias), activation: Activation::Gelu, residual: Some(&residual) };
    for kernels in all_tiers() {
        let mut y = [f32::NAN; 2];
        kernels.linear(&x, 1, &packed, epilogue, &mut y);
        assert!((y[0] as f64 - (gelu_f64(-0.5) + 10.0)).abs() < 4e-6, "{}: {}", kernels.isa(), y[0]);
        assert!((y[1] as f64 - (gelu_f64(2.5) + 20.0)).abs() < 4e-6, "{}: {}", kernels.isa(), y[1]);
    }
}

#[test]
fn results_independent_of_threads_and_batch() {
    // k spans several reduction blocks; rows and panels span several tiles.
    let (rows, n, k) = (300, 70, 600);
    let x = values(rows * k, 700);
    let w = values(n * k, 701);
    let v = values(n * k, 702);
    let bias = values(n, 703);
    let residual = values(rows * n, 704);
    let epilogue = Epilogue { bias: Some(&bias), activation: Activation::Gelu, residual: Some(&residual) };
    for (kernels, format) in all_tiers()
        .into_iter()
        .flat_map(|kernels| [WeightFormat::F32, WeightFormat::BF16].map(|format| (kernels, format)))
    {
        let packed = PackedMatrix::from_f32_as(format, &w, n, k);
        let value = PackedMatrix::from_f32_as(format, &v, n, k);
        let run = |threads: usize| {
            let mut linear = vec![f32::NAN; rows * n];
            let mut gated = vec![f32::NAN; rows * n];
            pool(threads).install(|| {
                kernels.linear(&x, rows, &packed, epilogue, &mut linear);
                kernels.linear_gated(&x, rows, &packed, Some(&bias), &value, None, Activation::Silu, &mut gated);
            });
            (linear, gated)
        };
        let (linear, gated) = run(1);
        for threads in [2, 3] {
            let (other_linear, other_gated) = run(threads);
            let same = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(same(&linear, &other_linear), "{} {format}: linear differs on {threads} threads", kernels.isa());
            assert!(same(&gated, &other_gated), "{} {format}: gated differs on {threads} threads", kernels.isa());
        }
        for row in [0, 1, 5, 8, 64, 95, 96, 97, 202, 255, 256, 257, 299] {
            let mut alone = vec![f32::NAN; n];
            let single_epilogue = Epilogue { residual: Some(&residual[row * n..(row + 1) * n]), ..epilogue };
            kernels.linear(&x[row * k..(row + 1) * k], 1, &packed, single_epilogue, &mut alone);
            let in_batch = &linear[row * n..(row + 1) * n];
            assert!(
                alone.iter().zip(in_batch).all(|(a, b)| a.to_bits() == b.to_bits()),
                "{} {format}: row {row} alone differs from the same row in a batch",
                kernels.isa()
            );
        }
    }
}

#[test]
fn packing_round_trips() {
    let (n, k) = (37, 11);
    let w = values(n * k, 800);
    let f32_packed = PackedMatrix::from_f32(&w, n, k);
    let f16_packed = PackedMatrix::from_f32_as(WeightFormat::F16, &w, n, k);
    let bf16_packed = PackedMatrix::from_f32_as(WeightFormat::BF16, &w, n, k);
    assert_eq!(f32_packed.storage_bytes(), 3 * 16 * 11 * 4);
    assert_eq!(f16_packed.storage_bytes(), 3 * 16 * 11 * 2);
    // BF16 stores pairs of input features, so the odd k is padded to 12.
    assert_eq!(bf16_packed.storage_bytes(), 3 * 16 * 12 * 2);
    assert_eq!(WeightFormat::BF16.k_group(), 2);
    for r in 0..n {
        for c in 0..k {
            let value = w[r * k + c];
            assert_eq!(f32_packed.get(r, c), value);
            assert_eq!(f16_packed.get(r, c), half::f16::from_f32(value).to_f32());
            assert_eq!(bf16_packed.get(r, c), half::bf16::from_f32(value).to_f32());
        }
    }
}

#[test]
fn bf16_packs_pairs_per_lane() {
    let (n, k) = (20, 5);
    let w: Vec<f32> = (0..n * k).map(|i| i as f32).collect();
    let packed = PackedMatrix::from_f32_as(WeightFormat::BF16, &w, n, k);
    let bytes = packed.as_bytes();
    let panel_bytes = 3 * 16 * 2 * 2;
    assert_eq!(bytes.len(), 2 * panel_bytes);
    let at = |row: usize, col: usize| {
        let start = (row / 16) * panel_bytes + (((col / 2) * 16 + row % 16) * 2 + col % 2) * 2;
        half::bf16::from_le_bytes([bytes[start], bytes[start + 1]]).to_f32()
    };
    for row in 0..32 {
        for col in 0..6 {
            let expected = if row < n && col < k { w[row * k + col] } else { 0.0 };
            assert_eq!(at(row, col), expected, "W[{row}][{col}]");
        }
    }
}

/// `bytes` copied into an allocation at `shift` bytes past a 64-byte boundary.
fn shared_at(bytes: &[u8], shift: usize) -> (Arc<Vec<u8>>, usize) {
    let mut storage = vec![0u8; bytes.len() + 2 * PACKED_ALIGN];
    let start = storage.as_ptr().align_offset(PACKED_ALIGN) + shift;
    storage[start..start + bytes.len()].copy_from_slice(bytes);
    (Arc::new(storage), start)
}

#[test]
fn shared_storage_borrows_when_aligned() {
    let (rows, n, k) = (5, 40, 33);
    let x = values(rows * k, 900);
    let w = values(n * k, 901);
    for format in [WeightFormat::F32, WeightFormat::F16, WeightFormat::BF16] {
        let owned = PackedMatrix::from_f32_as(format, &w, n, k);
        for shift in [0, 1, 2, 4] {
            let (storage, offset) = shared_at(owned.as_bytes(), shift);
            let shared = PackedMatrix::from_shared(storage, offset, format, n, k).expect("in bounds");
            assert_eq!(shared.is_shared(), shift == 0, "{format} shifted by {shift} bytes");
            assert_eq!(shared.as_bytes(), owned.as_bytes());
            for kernels in all_tiers() {
                let mut expected = vec![f32::NAN; rows * n];
                let mut got = vec![f32::NAN; rows * n];
                kernels.linear(&x, rows, &owned, Epilogue::default(), &mut expected);
                kernels.linear(&x, rows, &shared, Epilogue::default(), &mut got);
                assert!(
                    expected.iter().zip(&got).all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{} {format} shifted by {shift}",
                    kernels.isa()
                );
            }
        }
    }
}

#[test]
fn shared_storage_rejects_short_source() {
    let bytes = vec![0u8; WeightFormat::F32.packed_bytes(20, 10) - 1];
    let error = PackedMatrix::from_shared(Arc::new(bytes), 0, WeightFormat::F32, 20, 10).unwrap_err();
    assert_eq!(error, PackError::OutOfBounds { offset: 0, needed: 2 * 16 * 10 * 4, available: 2 * 16 * 10 * 4 - 1 });
    let error = PackedMatrix::from_shared(Arc::new(vec![0u8; 8]), usize::MAX, WeightFormat::F16, 1, 1).unwrap_err();
    assert!(matches!(error, PackError::OutOfBounds { .. }), "{error}");
}
