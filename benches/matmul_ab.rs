//! Interleaved f32 matmul comparison with the `gemm` crate, for machines whose
//! speed drifts between seconds.
//!
//! Criterion times each contender for seconds before the next, so on a shared
//! virtual machine a slow phase lands on one of them. Here every round passes
//! over all shapes and times one sample of jclip and one of `gemm` back to
//! back for each, in alternating order. The table gives the best sample of each, the one least disturbed by other
//! tenants, and the median of the per-round ratios.
//!
//! ```text
//! cargo bench --bench matmul_ab -- [--rounds N] [--threads 1,2] [--rows 197,512] [--weights cache|memory]
//! ```
//!
//! `--weights memory` cycles through 256 MiB of copies of each W, more than
//! the last-level cache of most machines, so that each call reads its weights
//! from memory, as a forward pass does. NOTE: on a CPU with a last-level
//! cache of 256 MiB or more, part of them come from cache. The default keeps one copy
//! in cache, as the criterion benchmark does. The output is a Markdown table.

use std::hint::black_box;
use std::time::{Duration, Instant};

mod common;

use common::{LAYERS, ROWS, check_against_gemm, gemm_crate, pool, values};
use jclip_kernels::{Epilogue, Isa, Kernels, PackedMatrix, with_workers_polling};

/// Shortest sample: calls are repeated until one sample lasts this long.
const SAMPLE: Duration = Duration::from_millis(10);
/// Bytes of weight copies cycled through with `--weights memory`.
const MEMORY_BYTES: usize = 256 << 20;

struct Options {
    rounds: usize,
    threads: Vec<usize>,
    rows: Vec<usize>,
    from_memory: bool,
}

fn parse_list(flag: &str, value: Option<String>) -> Result<Vec<usize>, String> {
    let value = value.ok_or(format!("{flag} needs a value"))?;
    value
        .split(',')
        .map(|item| match item.trim().parse() {
            Ok(0) | Err(_) => Err(format!("{flag}: `{item}` is not a positive integer")),
            Ok(number) => Ok(number),
        })
        .collect()
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options { rounds: 15, threads: vec![1, 2], rows: ROWS.to_vec(), from_memory: false };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--rounds" => match parse_list("--rounds", args.next())?.as_slice() {
                [rounds] => options.rounds = *rounds,
                _ => return Err("--rounds takes one number".into()),
            },
            "--threads" => options.threads = parse_list("--threads", args.next())?,
            "--rows" => options.rows = parse_list("--rows", args.next())?,
            "--weights" => match args.next().as_deref() {
                Some("cache") => options.from_memory = false,
                Some("memory") => options.from_memory = true,
                other => return Err(format!("--weights takes `cache` or `memory`, not {other:?}")),
            },
            // Cargo passes `--bench` to every benchmark binary.
            "--bench" => {}
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if options.threads.is_empty() || options.rows.is_empty() {
        return Err("--threads and --rows need at least one value".into());
    }
    Ok(options)
}

/// Seconds per call of one sample of `calls` calls.
fn sample(calls: usize, mut call: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..calls {
        call();
    }
    start.elapsed().as_secs_f64() / calls as f64
}

/// Returns the smallest of `values`, the best sample.
fn best(values: impl IntoIterator<Item = f64>) -> f64 {
    values.into_iter().fold(f64::INFINITY, f64::min)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len() % 2 == 1 { values[middle] } else { (values[middle - 1] + values[middle]) / 2.0 }
}

/// The weights of one layer shape, shared by every row count: one copy, or
/// enough copies to fill [`MEMORY_BYTES`] with `--weights memory`.
struct Layer {
    n: usize,
    k: usize,
    weights: Vec<Vec<f32>>,
    packed: Vec<PackedMatrix>,
}

impl Layer {
    fn new(n: usize, k: usize, from_memory: bool) -> Layer {
        let copies = if from_memory { (MEMORY_BYTES / (n * k * 4)).max(2) } else { 1 };
        let weights: Vec<Vec<f32>> = (0..copies).map(|copy| values(n * k, 4 + copy as u64)).collect();
        let packed = weights.iter().map(|w| PackedMatrix::from_f32(w, n, k)).collect();
        Layer { n, k, weights, packed }
    }
}

/// Samples of both contenders at one shape and thread count: seconds per call.
#[derive(Default)]
struct Samples {
    jclip: Vec<f64>,
    gemm: Vec<f64>,
}

impl Samples {
    /// Returns the median over rounds of gemm's time over jclip's.
    fn ratio(&self) -> f64 {
        let mut ratios: Vec<f64> = self.gemm.iter().zip(&self.jclip).map(|(theirs, ours)| theirs / ours).collect();
        median(&mut ratios)
    }
}

/// One shape `m×n×k` with its input, output and the samples per thread count.
struct Case<'a> {
    m: usize,
    layer: &'a Layer,
    x: Vec<f32>,
    y: Vec<f32>,
    /// Calls per sample for each thread count, set in the first round.
    calls: Vec<usize>,
    /// Next weight copy to use.
    next: usize,
    samples: Vec<Samples>,
}

impl Case<'_> {
    /// Runs jclip `calls` times and returns the seconds per call.
    fn jclip_sample(&mut self, kernels: &Kernels, calls: usize) -> f64 {
        let (m, layer) = (self.m, self.layer);
        let (x, y, next) = (&self.x, &mut self.y, &mut self.next);
        sample(calls, || {
            kernels.linear(black_box(x), m, &layer.packed[*next], Epilogue::default(), y);
            *next = (*next + 1) % layer.packed.len();
        })
    }

    /// Runs the `gemm` crate `calls` times and returns the seconds per call.
    fn gemm_sample(&mut self, calls: usize, threads: usize) -> f64 {
        let (m, layer) = (self.m, self.layer);
        let (x, y, next) = (&self.x, &mut self.y, &mut self.next);
        sample(calls, || {
            gemm_crate(black_box(x), &layer.weights[*next], y, m, layer.n, layer.k, threads);
            *next = (*next + 1) % layer.weights.len();
        })
    }

    /// Times one sample of jclip and one of `gemm` on `threads` workers, in
    /// the order given by `jclip_first`, and records them under `slot`.
    fn round(&mut self, kernels: &Kernels, slot: usize, threads: usize, jclip_first: bool) {
        if self.calls[slot] == 0 {
            // Warm up both, then size the samples by the slower of the two.
            let ours = self.jclip_sample(kernels, 1);
            let theirs = self.gemm_sample(1, threads);
            let once = ours.max(theirs).max(1e-9);
            self.calls[slot] = ((SAMPLE.as_secs_f64() / once).ceil() as usize).clamp(1, 10_000);
        }
        let calls = self.calls[slot];
        let (ours, theirs) = if jclip_first {
            let ours = self.jclip_sample(kernels, calls);
            (ours, self.gemm_sample(calls, threads))
        } else {
            let theirs = self.gemm_sample(calls, threads);
            (self.jclip_sample(kernels, calls), theirs)
        };
        self.samples[slot].jclip.push(ours);
        self.samples[slot].gemm.push(theirs);
    }
}

/// Measures the FMA rate of one core as the best of `rounds` samples, in GFLOP/s.
#[cfg(target_arch = "x86_64")]
fn fma_peak(rounds: usize) -> Option<(f64, &'static str)> {
    use common::peak;
    const ITERATIONS: usize = 100_000;
    if Isa::Avx512.is_supported() {
        let flops = (ITERATIONS * peak::CHAINS * 16 * 2) as f64;
        // SAFETY: AVX-512F was detected.
        let seconds = best((0..rounds).map(|_| sample(1, || _ = black_box(unsafe { peak::fma_avx512(ITERATIONS) }))));
        return Some((flops / seconds / 1e9, "avx512"));
    }
    if Isa::Avx2.is_supported() {
        let flops = (ITERATIONS * peak::CHAINS * 8 * 2) as f64;
        // SAFETY: AVX2 and FMA were detected.
        let seconds = best((0..rounds).map(|_| sample(1, || _ = black_box(unsafe { peak::fma_avx2(ITERATIONS) }))));
        return Some((flops / seconds / 1e9, "avx2"));
    }
    None
}

#[cfg(not(target_arch = "x86_64"))]
fn fma_peak(_: usize) -> Option<(f64, &'static str)> {
    None
}

fn main() {
    let options = match parse_options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("matmul_ab: {message}");
            std::process::exit(2);
        }
    };
    // The bf16 tiers multiply f32 weights with the avx512 kernels.
    let isa = match Isa::best_supported() {
        Isa::Avx512Bf16 | Isa::Amx => Isa::Avx512,
        isa => isa,
    };
    let kernels = Kernels::for_isa(isa).expect("the best tier is supported");

    let peak = fma_peak(options.rounds.max(5));
    match peak {
        Some((rate, name)) => println!("FMA peak of one core ({name}, best of the rounds): {rate:.1} GFLOP/s"),
        None => println!("FMA peak: no x86 FMA loop on this machine; the table gives no fractions of it"),
    }
    let weights = if options.from_memory { "read from memory (copies cycled)" } else { "in cache (one copy)" };
    println!(
        "jclip-{isa} against the gemm crate, {} interleaved rounds of samples of at least {} ms, weights {weights}.",
        options.rounds,
        SAMPLE.as_millis()
    );
    println!("GFLOP/s are of the best sample; `gemm ÷ jclip` is the median of the per-round time ratios.");
    println!();

    let mut header = String::from("| M×N×K |");
    let mut rule = String::from("|---|");
    for threads in &options.threads {
        header.push_str(&format!(" jclip {threads}t | gemm {threads}t | gemm ÷ jclip {threads}t |"));
        rule.push_str("---|---|---|");
    }
    let scaling = options.threads.len() > 1;
    if scaling {
        header.push_str(&format!(" jclip {}t ÷ {}t |", options.threads[options.threads.len() - 1], options.threads[0]));
        rule.push_str("---|");
    }
    println!("{header}\n{rule}");

    let layers: Vec<Layer> = LAYERS.iter().map(|&(n, k)| Layer::new(n, k, options.from_memory)).collect();
    let mut cases = Vec::new();
    for &m in &options.rows {
        for layer in &layers {
            check_against_gemm(&kernels, m, layer.n, layer.k);
            cases.push(Case {
                m,
                layer,
                x: values(m * layer.k, 3),
                y: vec![0.0; m * layer.n],
                calls: vec![0; options.threads.len()],
                next: 0,
                samples: options.threads.iter().map(|_| Samples::default()).collect(),
            });
        }
    }
    let pools: Vec<rayon::ThreadPool> = options.threads.iter().map(|&threads| pool(threads)).collect();
    // Every round passes over all cases, so that each case's samples spread
    // over the whole run rather than one slow or fast phase of the machine.
    for round in 0..options.rounds {
        for case in &mut cases {
            for (slot, (&threads, pool)) in options.threads.iter().zip(&pools).enumerate() {
                pool.install(|| with_workers_polling(|| case.round(&kernels, slot, threads, round % 2 == 0)));
            }
        }
    }

    for case in &cases {
        let (m, n, k) = (case.m, case.layer.n, case.layer.k);
        let flops = 2.0 * (m * n * k) as f64;
        let mut line = format!("| {m}×{n}×{k} |");
        let mut rates = Vec::new();
        for (samples, &threads) in case.samples.iter().zip(&options.threads) {
            let ours = flops / best(samples.jclip.iter().copied()) / 1e9;
            let theirs = flops / best(samples.gemm.iter().copied()) / 1e9;
            let fraction = match peak {
                Some((rate, _)) if threads == 1 => format!(" ({:.0}%)", 100.0 * ours / rate),
                _ => String::new(),
            };
            line.push_str(&format!(" {ours:.1}{fraction} | {theirs:.1} | {:.3} |", samples.ratio()));
            rates.push(ours);
        }
        if scaling {
            line.push_str(&format!(" {:.2}× |", rates[rates.len() - 1] / rates[0]));
        }
        println!("{line}");
    }
}
