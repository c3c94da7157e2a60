//! `jclip bench`: latency, throughput, GFLOP/s and memory of the engine on a
//! model directory, for texts of chosen token counts and for images, at one
//! or more thread counts.

mod cases;
mod peak;
mod report;
mod serve;
mod system;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use cases::{CaseInputs, CaseSpec};
use report::{BenchReport, CaseReport, Latency};

use crate::CliResult;
use crate::model_args::{ModelArgs, TruncateMode};

/// Image files used when no `--image` is given, relative to the current
/// directory or to the source checkout the binary was built from.
const DEFAULT_IMAGE_DIR: &str = "tests/fixtures/images";
const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "webp", "gif", "bmp", "tif", "tiff"];

/// The instant `main` began, the origin of the time to first embedding.
static MAIN_ENTRY: OnceLock<Instant> = OnceLock::new();

/// Records the start of `main`. Call it first thing in `main`: the time to
/// first embedding is measured from here, so it leaves out the exec and
/// dynamic loading before `main` (about a millisecond for this binary).
pub fn record_main_entry() {
    MAIN_ENTRY.get_or_init(Instant::now);
}

/// Returns the milliseconds since [`record_main_entry`].
fn since_main_ms() -> f64 {
    MAIN_ENTRY.get_or_init(Instant::now).elapsed().as_secs_f64() * 1e3
}

/// Named sets of cases.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Suite {
    /// The cases compared with PyTorch and ONNX Runtime: image, image:8,
    /// text:16, text:64, text:512, text:64x8.
    Compare,
    /// Scaling with length and batch: text:16, text:64, text:512,
    /// text:2048, text:8192, mixed:32, image, image:8.
    Scaling,
}

impl Suite {
    fn cases(self) -> Vec<CaseSpec> {
        let specs: &[&str] = match self {
            Suite::Compare => &["image", "image:8", "text:16", "text:64", "text:512", "text:64x8"],
            Suite::Scaling => {
                &["text:16", "text:64", "text:512", "text:2048", "text:8192", "mixed:32", "image", "image:8"]
            }
        };
        specs.iter().map(|spec| spec.parse().expect("suite cases are valid")).collect()
    }
}

/// Arguments of `jclip bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Model directory with config.json, model.safetensors and tokenizer.json.
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,

    /// Thread counts to measure, comma-separated; one model is opened per
    /// count (default: JCLIP_THREADS, else the CPUs available to the process).
    #[arg(long, value_name = "N,...", value_delimiter = ',')]
    pub threads: Vec<usize>,

    /// Cases to run, comma-separated or repeated: text:LEN (one text of LEN
    /// tokens with [CLS] and [SEP]), text:LENxBATCH, mixed:BATCH (lengths
    /// spread from 16 to 512 tokens), image, image:BATCH. Replaces --suite.
    #[arg(long = "case", value_name = "CASE", value_delimiter = ',')]
    pub cases: Vec<CaseSpec>,

    /// Set of cases to run when no --case is given.
    #[arg(long, value_enum, default_value_t = Suite::Compare)]
    pub suite: Suite,

    /// An image file for the image cases; repeatable, cycled to fill a batch
    /// (default: the photos in tests/fixtures/images).
    #[arg(long = "image", value_name = "PATH")]
    pub images: Vec<PathBuf>,

    /// Untimed runs before the timed ones, per case.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub warmup: usize,

    /// Timed runs per case, fewer if --time-budget runs out first.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub repeat: usize,

    /// Seconds of timed runs per case after which no new run starts (at least one run is made).
    #[arg(long, value_name = "SECONDS", default_value_t = 20.0)]
    pub time_budget: f64,

    /// Maximum tokens per forward pass (an image counts as its patches plus CLS); an input longer than this runs alone.
    #[arg(long, value_name = "N", default_value_t = jclip::options::DEFAULT_BATCH_TOKENS)]
    pub batch_tokens: usize,

    /// Let idle worker threads sleep between kernels (see `jclip embed --help`).
    #[arg(long)]
    pub no_spin: bool,

    /// Token limit per text (default: 512, raised to the longest text case).
    #[arg(long, value_name = "N")]
    pub max_length: Option<usize>,

    /// Weight precision: f32, f16, bf16, int8 (default: the precision of a
    /// directory written by `jclip convert`, else f32).
    #[arg(long, value_name = "DTYPE")]
    pub dtype: Option<jclip::Precision>,

    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,

    /// Skip measuring the FMA ceiling and the matmul speed.
    #[arg(long)]
    pub no_peak: bool,

    /// Open one model, then run one block of timed runs for each JSON request
    /// read from stdin and reply to each with one JSON line on stdout (for
    /// tools/bench). Takes at most one thread count.
    #[arg(long)]
    pub serve_stdin: bool,
}

impl BenchArgs {
    /// Returns the cases to run: --case if given, else the suite's.
    fn selected_cases(&self) -> Vec<CaseSpec> {
        if self.cases.is_empty() { self.suite.cases() } else { self.cases.clone() }
    }

    /// Returns the token limit: --max-length, else 512 raised to the longest text case.
    fn max_length(&self, cases: &[CaseSpec]) -> usize {
        let longest = cases.iter().flat_map(|case| case.text_lengths()).max().unwrap_or(0);
        self.max_length.unwrap_or(jclip::text::tokenizer::DEFAULT_MAX_LENGTH.max(longest))
    }

    /// Opens the model with `threads` workers.
    fn open_model(&self, threads: Option<usize>, max_length: usize) -> Result<jclip::Model, jclip::Error> {
        let model_args = ModelArgs {
            model: self.model.clone(),
            threads,
            max_length,
            truncate: TruncateMode::None,
            batch_tokens: self.batch_tokens,
            max_image_pixels: jclip::preprocess::DEFAULT_MAX_PIXELS,
            exif_orientation: false,
            dtype: self.dtype,
            no_spin: self.no_spin,
        };
        model_args.open()
    }

    /// Returns the images of the image cases: --image, else the fixture photos.
    fn image_files(&self) -> Result<Vec<PathBuf>, String> {
        if !self.images.is_empty() {
            return Ok(self.images.clone());
        }
        let candidates =
            [PathBuf::from(DEFAULT_IMAGE_DIR), Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_IMAGE_DIR)];
        let Some(dir) = candidates.iter().find(|dir| dir.is_dir()) else {
            return Err(format!("no {DEFAULT_IMAGE_DIR} directory here; pass image files with --image PATH"));
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| format!("failed to list {}: {e}", dir.display()))?
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| {
                let extension = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
                extension.is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.as_str()))
            })
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(format!("no image files in {}; pass image files with --image PATH", dir.display()));
        }
        Ok(files)
    }
}

/// How many runs a case gets.
#[derive(Clone, Copy, Debug)]
struct Timing {
    warmup: usize,
    repeat: usize,
    budget: Duration,
}

pub fn run(args: &BenchArgs) -> CliResult {
    // Check every count before the first model opens, not when its turn comes.
    for &threads in &args.threads {
        jclip::options::check_threads(threads)?;
    }
    if args.repeat == 0 {
        return Err("--repeat: use at least 1 timed run".into());
    }
    if !(args.time_budget.is_finite() && args.time_budget >= 0.0) {
        return Err(format!("--time-budget {} is not a non-negative number of seconds", args.time_budget).into());
    }
    if args.serve_stdin {
        return serve::run(args);
    }
    let cases = args.selected_cases();
    let images =
        if cases.iter().any(|case| matches!(case, CaseSpec::Image { .. })) { args.image_files()? } else { Vec::new() };
    let timing = Timing { warmup: args.warmup, repeat: args.repeat, budget: Duration::from_secs_f64(args.time_budget) };
    let thread_counts: Vec<Option<usize>> =
        if args.threads.is_empty() { vec![None] } else { args.threads.iter().copied().map(Some).collect() };
    let max_length = args.max_length(&cases);

    let started_unix_seconds = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let load_average_before = system::load_average();
    let cpu_before = system::CpuSnapshot::take();

    let mut first_open_ms = None;
    let mut first_embedding_ms = None;
    let mut isa = String::new();
    let mut precision = String::new();
    let mut weights_in_place = false;
    let mut spin = !args.no_spin;
    let mut resident_after_load = None;
    let mut peaks = Vec::new();
    let mut reports = Vec::new();
    let mut peak_rss = system::PeakRss::default();
    for threads in thread_counts {
        let model = args.open_model(threads, max_length)?;
        if first_open_ms.is_none() {
            first_open_ms = Some(since_main_ms());
            resident_after_load = system::resident();
        }
        isa = model.isa().to_string();
        precision = model.precision().to_string();
        weights_in_place = model.weights_in_place();
        spin = model.spin();
        eprintln!("measuring with {}", report::threads_label(model.threads()));
        for case in &cases {
            let inputs = cases::build_inputs(case, model.tokenizer(), &images)?;
            let report = run_case(&model, case, &inputs, timing, &mut peak_rss, &mut first_embedding_ms)?;
            eprintln!(
                "  {:<28} {:>3} runs, p50 {:>9.1} ms, {:>8.0} tokens/s",
                report.label, report.runs, report.latency_ms.p50, report.tokens_per_second
            );
            reports.push(report);
        }
        if !args.no_peak {
            // Measured after the cases, so that the first embedding is not delayed.
            let measured = peak::measure(&model);
            for report in reports.iter_mut().filter(|report| report.threads == measured.threads) {
                report.percent_of_fma_peak = report.gflop_per_second.map(|g| 100.0 * g / measured.fma_gflops);
            }
            peaks.push(measured);
        }
    }

    let load_average_after = system::load_average();
    let other_cpu_use = cpu_before.zip(system::CpuSnapshot::take()).map(|(before, after)| before.others_until(&after));
    let report = BenchReport {
        jclip_version: env!("CARGO_PKG_VERSION"),
        model: args.model.display().to_string(),
        isa,
        precision,
        weights_in_place,
        spin,
        cpu_model: system::cpu_model(),
        cpus_available: std::thread::available_parallelism().map_or(1, |n| n.get()),
        started_unix_seconds,
        load_average_before,
        load_average_after,
        other_cpu_use,
        busy_warning: system::busy_warning(load_average_before, other_cpu_use),
        first_open_ms: first_open_ms.unwrap_or_default(),
        first_embedding_ms,
        peaks,
        cases: reports,
        process_peak_rss_bytes: peak_rss.process_peak(),
        resident_after_load,
        resident_at_end: system::resident(),
    };
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        out!("{}", report::table(&report));
    }
    Ok(())
}

/// Runs one case: warm-up runs, then timed runs until `timing.repeat` runs
/// or the time budget is spent. Records the first embedding of the process.
fn run_case(
    model: &jclip::Model,
    case: &CaseSpec,
    inputs: &CaseInputs,
    timing: Timing,
    peak_rss: &mut system::PeakRss,
    first_embedding_ms: &mut Option<f64>,
) -> Result<CaseReport, String> {
    peak_rss.start_interval();
    let expected_lengths = case.text_lengths();
    let mut embed_once = || -> Result<(f64, usize), String> {
        let started = Instant::now();
        let embeddings = inputs.embed(model).map_err(|e| format!("case {case}: {e}"))?;
        let elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
        first_embedding_ms.get_or_insert_with(since_main_ms);
        check_embeddings(case, &expected_lengths, inputs.len(), &embeddings)?;
        Ok((elapsed_ms, embeddings.iter().map(|e| e.tokens).sum()))
    };

    for _ in 0..timing.warmup {
        embed_once()?;
    }
    let deadline = Instant::now() + timing.budget;
    let mut times_ms = Vec::with_capacity(timing.repeat);
    let mut tokens = 0;
    while times_ms.len() < timing.repeat {
        let (elapsed_ms, run_tokens) = embed_once()?;
        times_ms.push(elapsed_ms);
        tokens = run_tokens;
        if Instant::now() >= deadline {
            break;
        }
    }

    let latency = Latency::from_times(&times_ms);
    let seconds = latency.p50 / 1e3;
    let gflop = cases::case_flops(case, model.config()).map(|flops| flops / 1e9);
    Ok(CaseReport {
        case: case.to_string(),
        label: case.label(),
        threads: model.threads(),
        inputs: case.inputs(),
        tokens,
        warmup: timing.warmup,
        runs: times_ms.len(),
        tokens_per_second: tokens as f64 / seconds,
        inputs_per_second: case.inputs() as f64 / seconds,
        gflop,
        gflop_per_second: gflop.map(|g| g / seconds),
        percent_of_fma_peak: None,
        latency_ms: latency,
        peak_rss_bytes: system::peak_rss_bytes(),
        peak_rss_per_case: peak_rss.is_per_interval(),
        times_ms,
    })
}

/// Checks that a run embedded every input, each text with its intended length.
fn check_embeddings(
    case: &CaseSpec,
    expected_lengths: &[usize],
    inputs: usize,
    embeddings: &[jclip::Embedding],
) -> Result<(), String> {
    if embeddings.len() != inputs {
        return Err(format!("case {case}: {} embeddings for {inputs} inputs", embeddings.len()));
    }
    for (index, (embedding, &expected)) in embeddings.iter().zip(expected_lengths).enumerate() {
        if embedding.tokens != expected {
            return Err(format!("case {case}: text {index} ran with {} tokens, expected {expected}", embedding.tokens));
        }
    }
    Ok(())
}
