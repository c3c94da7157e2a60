//! Kernel benchmarks: matmul at the model's shapes beside the `gemm` crate and
//! a naive loop, the FMA, `vdpbf16ps` and VNNI peaks of one core, attention,
//! and the vector kernels.
//! Matmul, peak and attention rates are GFLOP/s, which criterion prints as
//! Gelem/s with one element per floating-point operation. Vector kernels
//! report the bytes they read and write per second.
//!
//! Run everything with `cargo bench --bench kernels`, or one group with a
//! filter, e.g. `cargo bench --bench kernels -- matmul/197x768x768`. The
//! `int8/` groups time int8 weights beside f32 weights on the same tier.
//! Their rates count one multiply and one add per weight and row, as for f32.
//! Every matmul shape is checked against the `gemm` crate before it is timed.

// The package's declared MSRV predates the AVX-512 intrinsics of the peak
// loop, but `jclip-kernels`, which it depends on, already needs Rust 1.89.
#![allow(clippy::incompatible_msrv)]

use std::hint::black_box;
use std::time::Duration;

mod common;

#[cfg(target_arch = "x86_64")]
use common::peak;
use common::{LAYERS, ROWS, check_against_gemm, gemm_crate, pool, values};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use jclip_kernels::{
    Activation, AttentionBias, AttentionParams, CpuFeatures, Epilogue, Isa, Kernels, PackedMatrix, WeightFormat,
    with_workers_polling,
};

/// The naive loop runs only up to this many rows; beyond, one call takes seconds.
const NAIVE_MAX_ROWS: usize = 16;

fn naive(x: &[f32], w: &[f32], y: &mut [f32], m: usize, n: usize, k: usize) {
    for r in 0..m {
        for c in 0..n {
            let mut sum = 0.0f32;
            for kk in 0..k {
                sum += x[r * k + kk] * w[c * k + kk];
            }
            y[r * n + c] = sum;
        }
    }
}

fn matmul(c: &mut Criterion) {
    // The bf16 tiers multiply f32 weights with the avx512 kernels, so the
    // f32 rows are measured and named as avx512.
    let best_f32 = match Isa::best_supported() {
        Isa::Avx512Bf16 | Isa::Amx => Isa::Avx512,
        isa => isa,
    };
    let best = Kernels::for_isa(best_f32).expect("the best tier is supported");
    let mut tiers = vec![best];
    if best.isa() == Isa::Avx512 {
        tiers.push(Kernels::for_isa(Isa::Avx2).expect("AVX-512 CPUs have AVX2"));
    }
    let pools = [(1, pool(1)), (2, pool(2))];
    for &m in &ROWS {
        for &(n, k) in &LAYERS {
            check_against_gemm(&best, m, n, k);
            let x = values(m * k, 3);
            let w = values(n * k, 4);
            let packed = PackedMatrix::from_f32(&w, n, k);
            let mut y = vec![0.0f32; m * n];
            let mut group = c.benchmark_group(format!("matmul/{m}x{n}x{k}"));
            group.throughput(Throughput::Elements((2 * m * n * k) as u64));
            for (threads, pool) in &pools {
                for (index, kernels) in tiers.iter().enumerate() {
                    // The lower tier only single-threaded, to compare tiers.
                    if index > 0 && *threads > 1 {
                        continue;
                    }
                    let id = BenchmarkId::new(format!("jclip-{}", kernels.isa()), format!("{threads}t"));
                    // The engine runs a forward pass with the idle workers
                    // polling for work (`with_workers_polling`), and so do
                    // both contenders here.
                    group.bench_function(id, |b| {
                        pool.install(|| {
                            with_workers_polling(|| {
                                b.iter(|| kernels.linear(black_box(&x), m, &packed, Epilogue::default(), &mut y))
                            })
                        })
                    });
                }
                group.bench_function(BenchmarkId::new("gemm", format!("{threads}t")), |b| {
                    pool.install(|| {
                        with_workers_polling(|| b.iter(|| gemm_crate(black_box(&x), &w, &mut y, m, n, k, *threads)))
                    })
                });
            }
            if m <= NAIVE_MAX_ROWS {
                group.bench_function(BenchmarkId::new("naive", "1t"), |b| {
                    b.iter(|| naive(black_box(&x), &w, &mut y, m, n, k))
                });
            }
            group.finish();
        }
    }
}

/// Tokens per call of the int8 comparison.
const INT8_ROWS: [usize; 5] = [1, 16, 64, 197, 512];
/// (N, K) of the int8 comparison: attention output, fused QKV, one GEGLU
/// half, GEGLU down projection.
const INT8_LAYERS: [(usize, usize); 4] = [(768, 768), (2304, 768), (3072, 768), (768, 3072)];

/// Matmul with int8 weights beside f32 weights, single-threaded, on the best
/// tier, and with the int8 kernel of the tier below too: AVX2 on AVX-512
/// CPUs, and the AVX-512 one (VNNI) on AMX CPUs.
fn matmul_int8(c: &mut Criterion) {
    let best = Kernels::for_isa(Isa::best_supported()).expect("the best tier is supported");
    let lower = match best.isa() {
        Isa::Avx512 => Some(Isa::Avx2),
        Isa::Amx => Some(Isa::Avx512),
        _ => None,
    };
    let lower = lower.map(|isa| Kernels::for_isa(isa).expect("the tiers below the best one are supported"));
    let single = pool(1);
    for &m in &INT8_ROWS {
        for &(n, k) in &INT8_LAYERS {
            let x = values(m * k, 20);
            let w = values(n * k, 21);
            let f32_weights = PackedMatrix::from_f32(&w, n, k);
            let int8_weights = PackedMatrix::from_f32_as(WeightFormat::Int8, &w, n, k);
            let mut y = vec![0.0f32; m * n];
            let mut group = c.benchmark_group(format!("int8/{m}x{n}x{k}"));
            group.throughput(Throughput::Elements((2 * m * n * k) as u64));
            let mut runs = vec![(format!("f32-{}", best.isa()), best, &f32_weights)];
            runs.push((format!("int8-{}", best.int8_kernel_name()), best, &int8_weights));
            if let Some(lower) = lower {
                runs.push((format!("int8-{}", lower.int8_kernel_name()), lower, &int8_weights));
            }
            for (name, kernels, packed) in runs {
                group.bench_function(BenchmarkId::new(name, "1t"), |b| {
                    single.install(|| b.iter(|| kernels.linear(black_box(&x), m, packed, Epilogue::default(), &mut y)))
                });
            }
            group.finish();
        }
    }
}

/// Matmul at one image's tokens with half-precision weights and the fused epilogues.
fn matmul_variants(c: &mut Criterion) {
    let kernels = Kernels::detect().expect("a supported tier");
    let single = pool(1);
    let (m, n, k) = (197, 2048, 768);
    let x = values(m * k, 5);
    let w = values(n * k, 6);
    let v = values(n * k, 7);
    let bias = values(n, 8);
    let mut y = vec![0.0f32; m * n];
    let mut group = c.benchmark_group(format!("matmul-variants/{m}x{n}x{k}"));
    group.throughput(Throughput::Elements((2 * m * n * k) as u64));
    for format in [WeightFormat::F32, WeightFormat::F16, WeightFormat::BF16] {
        let packed = PackedMatrix::from_f32_as(format, &w, n, k);
        group.bench_function(BenchmarkId::new("bias-gelu", format.name()), |b| {
            let epilogue = Epilogue { bias: Some(&bias), activation: Activation::Gelu, residual: None };
            single.install(|| b.iter(|| kernels.linear(black_box(&x), m, &packed, epilogue, &mut y)))
        });
    }
    let (gate, value) = (PackedMatrix::from_f32(&w, n, k), PackedMatrix::from_f32(&v, n, k));
    group.throughput(Throughput::Elements((4 * m * n * k) as u64));
    group.bench_function(BenchmarkId::new("gated-silu", "f32"), |b| {
        single.install(|| {
            b.iter(|| {
                kernels.linear_gated(
                    black_box(&x),
                    m,
                    &gate,
                    Some(&bias),
                    &value,
                    Some(&bias),
                    Activation::Silu,
                    &mut y,
                )
            })
        })
    });
    group.finish();
}

/// Rows of the bf16 comparison: one token, short batches, one image, long batches.
const BF16_ROWS: [usize; 5] = [1, 16, 64, 197, 512];
/// (N, K) of the bf16 comparison: attention output, one 3072-wide MLP half,
/// fused QKV, one SwiGLU half, SwiGLU down projection.
const BF16_LAYERS: [(usize, usize); 5] = [(768, 768), (3072, 768), (2304, 768), (2048, 768), (768, 2048)];

/// Matmul with f32 weights beside BF16 weights, single-threaded: on the best
/// f32 tier (BF16 widened to f32) and, where the CPU has them, on the bf16
/// dot-product tiers (`avx512bf16` with `vdpbf16ps`, `amx` with
/// `tdpbf16ps`). Rates count 2·M·N·K operations whatever the format.
fn matmul_bf16(c: &mut Criterion) {
    let single = pool(1);
    let tiers: Vec<Kernels> = Isa::supported()
        .into_iter()
        .filter(|&isa| isa != Isa::Scalar)
        .map(|isa| Kernels::for_isa(isa).expect("supported"))
        .filter(|kernels| kernels.isa() == Isa::Avx512 || kernels.isa() == Isa::Neon || kernels.bf16_dot())
        .collect();
    for &m in &BF16_ROWS {
        for &(n, k) in &BF16_LAYERS {
            let x = values(m * k, 17);
            let w = values(n * k, 18);
            let mut y = vec![0.0f32; m * n];
            let mut group = c.benchmark_group(format!("matmul-bf16/{m}x{n}x{k}"));
            group.throughput(Throughput::Elements((2 * m * n * k) as u64));
            for format in [WeightFormat::F32, WeightFormat::BF16] {
                let packed = PackedMatrix::from_f32_as(format, &w, n, k);
                for kernels in &tiers {
                    // The bf16 tiers compute f32 weights as the f32 tier does.
                    if kernels.bf16_dot() && format == WeightFormat::F32 {
                        continue;
                    }
                    let id = BenchmarkId::new(format!("jclip-{}", kernels.isa()), format.name());
                    group.bench_function(id, |b| {
                        single.install(|| {
                            b.iter(|| kernels.linear(black_box(&x), m, &packed, Epilogue::default(), &mut y))
                        })
                    });
                }
            }
            group.finish();
        }
    }
}

/// One core's f32 FMA peak: independent FMA chains on full-width registers.
#[cfg(target_arch = "x86_64")]
fn fma_peak(c: &mut Criterion) {
    const ITERATIONS: usize = 100_000;
    let mut group = c.benchmark_group("peak");
    if Isa::Avx512.is_supported() {
        group.throughput(Throughput::Elements((ITERATIONS * peak::CHAINS * 16 * 2) as u64));
        // SAFETY: AVX-512F was detected.
        group.bench_function("fma-avx512", |b| b.iter(|| unsafe { peak::fma_avx512(black_box(ITERATIONS)) }));
    }
    if Isa::Avx512Bf16.is_supported() {
        group.throughput(Throughput::Elements((ITERATIONS * peak::CHAINS * 16 * 4) as u64));
        // SAFETY: AVX-512F and AVX-512 BF16 were detected.
        group.bench_function("dpbf16-avx512", |b| b.iter(|| unsafe { peak::dpbf16_avx512(black_box(ITERATIONS)) }));
    }
    if Isa::Avx512.is_supported() && CpuFeatures::detect().avx512vnni {
        // One multiply and one add per byte product, as the int8 matmul rates count them.
        group.throughput(Throughput::Elements((ITERATIONS * peak::CHAINS * 64 * 2) as u64));
        // SAFETY: AVX-512F and VNNI were detected.
        group.bench_function("vpdpbusd-avx512", |b| b.iter(|| unsafe { peak::dpbusd_avx512(black_box(ITERATIONS)) }));
    }
    if Isa::Avx2.is_supported() {
        group.throughput(Throughput::Elements((ITERATIONS * peak::CHAINS * 8 * 2) as u64));
        // SAFETY: AVX2 and FMA were detected.
        group.bench_function("fma-avx2", |b| b.iter(|| unsafe { peak::fma_avx2(black_box(ITERATIONS)) }));
    }
    group.finish();
}

#[cfg(not(target_arch = "x86_64"))]
fn fma_peak(_: &mut Criterion) {}

/// Fused attention of one image (197 tokens) and of a 512-token text, 12 heads of 64.
fn attention(c: &mut Criterion) {
    let single = pool(1);
    let (heads, head_dim) = (12, 64);
    let width = heads * head_dim;
    let slopes: Vec<f32> = (1..=heads).map(|h| 2f32.powf(-8.0 * h as f32 / heads as f32)).collect();
    for tokens in [197usize, 512] {
        let qkv = values(tokens * 3 * width, 9);
        let mut out = vec![0.0f32; tokens * width];
        // One segment of all tokens.
        let segments = std::iter::once(0..tokens).collect::<Vec<_>>();
        let mut group = c.benchmark_group(format!("attention/{tokens}x{heads}x{head_dim}"));
        // Q·Kᵀ and P·V: 2 · 2·tokens²·head_dim floating-point operations per head.
        group.throughput(Throughput::Elements((4 * tokens * tokens * head_dim * heads) as u64));
        for isa in Isa::supported() {
            let kernels = Kernels::for_isa(isa).expect("supported");
            for (name, bias) in [("none", AttentionBias::None), ("alibi", AttentionBias::Alibi { slopes: &slopes })] {
                let params = AttentionParams { heads, head_dim, scale: 0.125, bias, key_mask: None };
                group.bench_function(BenchmarkId::new(format!("jclip-{isa}"), name), |b| {
                    single.install(|| {
                        b.iter(|| {
                            kernels.attention(
                                black_box(&qkv),
                                &qkv[width..],
                                &qkv[2 * width..],
                                3 * width,
                                &segments,
                                &params,
                                &mut out,
                            )
                        })
                    })
                });
            }
        }
        group.finish();
    }
}

/// Measures the vector kernels at the model's sizes, per tier, single-threaded.
fn vector(c: &mut Criterion) {
    let single = pool(1);
    let (tokens, hidden, inner) = (197, 768, 3072);
    let activations = values(tokens * inner, 10);
    let hidden_states = values(tokens * hidden, 11);
    let gamma = values(hidden, 12);
    let beta = values(hidden, 13);
    // One angle per pair: a true rotation, so that rotating the same buffer
    // again and again keeps its magnitude (no subnormals, no overflow).
    let angles: Vec<f32> = values(tokens * 32, 14).iter().flat_map(|&a| [a, a]).collect();
    let cos: Vec<f32> = angles.iter().map(|a| a.cos()).collect();
    let sin: Vec<f32> = angles.iter().map(|a| a.sin()).collect();
    let halves: Vec<u8> =
        values(hidden * hidden, 15).iter().flat_map(|v| half::f16::from_f32(*v).to_le_bytes()).collect();
    for isa in Isa::supported() {
        let kernels = Kernels::for_isa(isa).expect("supported");
        let name = format!("jclip-{isa}");
        let mut group = c.benchmark_group("vector");
        let mut buffer = hidden_states.clone();
        // Read and write every value once.
        group.throughput(Throughput::Bytes((2 * 4 * buffer.len()) as u64));
        group.bench_function(BenchmarkId::new(format!("layer-norm/{tokens}x{hidden}"), &name), |b| {
            single.install(|| {
                b.iter(|| kernels.layer_norm_into(black_box(&hidden_states), &mut buffer, &gamma, &beta, 1e-5))
            })
        });
        let mut rows = values(12 * tokens * tokens, 16);
        group.throughput(Throughput::Bytes((2 * 4 * rows.len()) as u64));
        group.bench_function(BenchmarkId::new(format!("softmax/{}x{tokens}", 12 * tokens), &name), |b| {
            single.install(|| b.iter(|| kernels.softmax(black_box(&mut rows), tokens)))
        });
        let mut buffer = activations.clone();
        group.throughput(Throughput::Bytes((2 * 4 * buffer.len()) as u64));
        group.bench_function(BenchmarkId::new(format!("gelu/{tokens}x{inner}"), &name), |b| {
            single.install(|| {
                b.iter(|| {
                    buffer.copy_from_slice(&activations);
                    kernels.gelu(black_box(&mut buffer))
                })
            })
        });
        group.bench_function(BenchmarkId::new(format!("silu/{tokens}x{inner}"), &name), |b| {
            single.install(|| {
                b.iter(|| {
                    buffer.copy_from_slice(&activations);
                    kernels.silu(black_box(&mut buffer))
                })
            })
        });
        let mut q = hidden_states.clone();
        group.throughput(Throughput::Bytes((2 * 4 * q.len()) as u64));
        group.bench_function(BenchmarkId::new(format!("rope/{tokens}x12x64"), &name), |b| {
            b.iter(|| kernels.rope_interleaved(black_box(&mut q), hidden, tokens, 12, 64, &cos, &sin))
        });
        group.throughput(Throughput::Bytes((2 * 4 * hidden) as u64));
        group.bench_function(BenchmarkId::new(format!("dot/{hidden}"), &name), |b| {
            b.iter(|| kernels.dot(black_box(&gamma), black_box(&beta)))
        });
        let mut embedding = gamma.clone();
        group.bench_function(BenchmarkId::new(format!("l2-normalize/{hidden}"), &name), |b| {
            b.iter(|| kernels.l2_normalize(black_box(&mut embedding)))
        });
        let mut widened = vec![0.0f32; hidden * hidden];
        group.throughput(Throughput::Bytes((6 * widened.len()) as u64));
        group.bench_function(BenchmarkId::new(format!("f16-to-f32/{hidden}x{hidden}"), &name), |b| {
            b.iter(|| kernels.f16_to_f32(black_box(&halves), &mut widened))
        });
        group.finish();
    }
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = fma_peak, matmul, matmul_bf16, matmul_int8, matmul_variants, attention, vector
}
criterion_main!(benches);
