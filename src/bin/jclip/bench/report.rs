//! The benchmark's results: latency statistics, the JSON document and the
//! table printed for people.

use std::fmt::Write as _;

use serde::Serialize;

use super::peak::Peaks;
use super::system::{OtherCpuUse, Resident};

/// Latency statistics of one case, in milliseconds.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub min: f64,
    pub mean: f64,
    pub max: f64,
}

impl Latency {
    /// Summarises run times; percentiles use the nearest-rank method, so with
    /// fewer than 100 runs p99 is the slowest run.
    pub fn from_times(times_ms: &[f64]) -> Latency {
        assert!(!times_ms.is_empty(), "a case has at least one timed run");
        let mut sorted = times_ms.to_vec();
        sorted.sort_by(f64::total_cmp);
        let rank = |q: f64| sorted[((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1];
        Latency {
            p50: rank(0.50),
            p90: rank(0.90),
            p99: rank(0.99),
            min: sorted[0],
            mean: sorted.iter().sum::<f64>() / sorted.len() as f64,
            max: sorted[sorted.len() - 1],
        }
    }
}

/// Results of one case at one thread count.
#[derive(Clone, Debug, Serialize)]
pub struct CaseReport {
    /// The case as given to `--case`, e.g. `text:64x8`.
    pub case: String,
    pub label: String,
    pub threads: usize,
    pub inputs: usize,
    /// Tokens the towers saw in one run (an image counts its patches plus CLS).
    pub tokens: usize,
    pub warmup: usize,
    pub runs: usize,
    pub latency_ms: Latency,
    /// Throughput at the median latency.
    pub tokens_per_second: f64,
    pub inputs_per_second: f64,
    /// Floating-point operations of one run (matrix products and attention).
    pub gflop: Option<f64>,
    /// `gflop` over the median latency.
    pub gflop_per_second: Option<f64>,
    /// `gflop_per_second` as a percentage of the measured FMA ceiling at this thread count.
    pub percent_of_fma_peak: Option<f64>,
    /// Peak resident memory while the case ran (weights included).
    pub peak_rss_bytes: Option<u64>,
    /// Whether `peak_rss_bytes` covers only this case (else the whole process so far).
    pub peak_rss_per_case: bool,
    pub times_ms: Vec<f64>,
}

/// The whole run.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub jclip_version: &'static str,
    pub model: String,
    /// Kernel tier of the engine.
    pub isa: String,
    /// Precision of the linear layers' weights.
    pub precision: String,
    /// Whether the weights were used in place from a `jclip convert` file
    /// (else packed while opening).
    pub weights_in_place: bool,
    /// Whether idle workers polled for work during a forward pass (off with `--no-spin`).
    pub spin: bool,
    pub cpu_model: Option<String>,
    pub cpus_available: usize,
    /// Seconds since the Unix epoch at the start of the run.
    pub started_unix_seconds: u64,
    pub load_average_before: Option<[f64; 3]>,
    pub load_average_after: Option<[f64; 3]>,
    /// CPU use of other processes and of the hypervisor during the run.
    pub other_cpu_use: Option<OtherCpuUse>,
    /// Set when the machine was busy and timings are not representative.
    pub busy_warning: Option<String>,
    /// From the start of `main` to the first model being open.
    pub first_open_ms: f64,
    /// From the start of `main` to the end of the first embedding call.
    pub first_embedding_ms: Option<f64>,
    pub peaks: Vec<Peaks>,
    pub cases: Vec<CaseReport>,
    /// Peak resident memory of the whole process.
    pub process_peak_rss_bytes: Option<u64>,
    /// Resident memory right after the first model was opened, by kind.
    pub resident_after_load: Option<Resident>,
    /// Resident memory at the end of the run, by kind.
    pub resident_at_end: Option<Resident>,
}

/// Returns "1 thread" or "N threads".
pub fn threads_label(threads: usize) -> String {
    if threads == 1 { "1 thread".to_string() } else { format!("{threads} threads") }
}

fn megabytes(bytes: Option<u64>) -> String {
    bytes.map_or("-".to_string(), |b| format!("{:.0}", b as f64 / (1024.0 * 1024.0)))
}

fn optional(value: Option<f64>, decimals: usize) -> String {
    value.map_or("-".to_string(), |v| format!("{v:.decimals$}"))
}

/// Formats the report as a plain-text table.
pub fn table(report: &BenchReport) -> String {
    let mut out = String::new();
    let cpu = report.cpu_model.as_deref().unwrap_or("unknown CPU");
    let _ = writeln!(
        out,
        "jclip {} bench: {} ({} kernels, {} weights {}, idle workers {}) on {cpu}, {} CPUs available",
        report.jclip_version,
        report.model,
        report.isa,
        report.precision,
        if report.weights_in_place { "mapped in place" } else { "packed at load" },
        if report.spin { "polling" } else { "sleeping" },
        report.cpus_available
    );
    for peak in &report.peaks {
        let [rows, n, k] = peak.matmul_shape;
        let _ = writeln!(
            out,
            "ceiling with {}: FP32 FMA {:.1} GFLOP/s ({}); jclip matmul {rows}×{n}×{k}: {:.1} GFLOP/s",
            threads_label(peak.threads),
            peak.fma_gflops,
            peak.fma_instructions,
            peak.matmul_gflops
        );
    }
    let _ = writeln!(
        out,
        "first model open {:.0} ms, first embedding {} ms after main() began",
        report.first_open_ms,
        optional(report.first_embedding_ms, 0)
    );
    let _ = writeln!(out);

    let header = [
        "threads",
        "case",
        "runs",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "min ms",
        "mean ms",
        "tokens/s",
        "inputs/s",
        "GFLOP/s",
        "% FMA",
        "peak RSS MB",
    ];
    let rows: Vec<[String; 13]> = report
        .cases
        .iter()
        .map(|case| {
            let latency = &case.latency_ms;
            [
                case.threads.to_string(),
                case.label.clone(),
                case.runs.to_string(),
                format!("{:.1}", latency.p50),
                format!("{:.1}", latency.p90),
                format!("{:.1}", latency.p99),
                format!("{:.1}", latency.min),
                format!("{:.1}", latency.mean),
                format!("{:.0}", case.tokens_per_second),
                format!("{:.2}", case.inputs_per_second),
                optional(case.gflop_per_second, 1),
                optional(case.percent_of_fma_peak, 1),
                megabytes(case.peak_rss_bytes),
            ]
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(column, (cell, &width))| {
                // The case column is text and left-aligned; numbers are right-aligned.
                if column == 1 { format!("{cell:<width$}") } else { format!("{cell:>width$}") }
            })
            .collect();
        padded.join("  ").trim_end().to_string()
    };
    let _ = writeln!(out, "{}", line(&header.map(String::from)));
    for row in &rows {
        let _ = writeln!(out, "{}", line(row));
    }
    let _ = writeln!(out);

    let load =
        |load: Option<[f64; 3]>| load.map_or("-".to_string(), |l| format!("{:.2} {:.2} {:.2}", l[0], l[1], l[2]));
    let _ = write!(
        out,
        "load average before {}, after {}",
        load(report.load_average_before),
        load(report.load_average_after)
    );
    if let Some(others) = report.other_cpu_use {
        let _ = write!(
            out,
            "; other processes used {:.2} CPUs, steal {:.2} CPUs on average",
            others.other_cpus, others.steal_cpus
        );
    }
    let _ = writeln!(out);
    let _ = write!(out, "process peak RSS {} MB", megabytes(report.process_peak_rss_bytes));
    if let Some(resident) = report.resident_after_load {
        let _ = write!(
            out,
            "; resident after load: {} MB anonymous, {} MB of mapped files",
            megabytes(Some(resident.anonymous_bytes)),
            megabytes(Some(resident.file_bytes))
        );
    }
    if let Some(resident) = report.resident_at_end {
        let _ = write!(
            out,
            "; resident at the end: {} MB anonymous, {} MB of mapped files (the checkpoint, the binary)",
            megabytes(Some(resident.anonymous_bytes)),
            megabytes(Some(resident.file_bytes))
        );
    }
    let _ = writeln!(out);
    if let Some(warning) = &report.busy_warning {
        let _ = writeln!(out, "WARNING: {warning}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_uses_nearest_rank() {
        let times: Vec<f64> = (1..=10).map(f64::from).collect();
        let latency = Latency::from_times(&times);
        assert_eq!(latency.p50, 5.0);
        assert_eq!(latency.p90, 9.0);
        assert_eq!(latency.p99, 10.0);
        assert_eq!(latency.min, 1.0);
        assert_eq!(latency.max, 10.0);
        assert_eq!(latency.mean, 5.5);
    }

    #[test]
    fn latency_of_one_run() {
        let latency = Latency::from_times(&[7.0]);
        assert_eq!((latency.p50, latency.p99, latency.min, latency.mean), (7.0, 7.0, 7.0, 7.0));
    }
}
