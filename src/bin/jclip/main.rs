//! The `jclip` command-line tool.

/// Writes to stdout as `println!` does, but returns a failed write (a full
/// disk, a closed pipe) from the calling function as a [`StdoutError`]
/// instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*).map_err(crate::StdoutError)?
    }};
}

/// As [`outln!`] without the newline.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout(), $($arg)*).map_err(crate::StdoutError)?
    }};
}

mod bench;
mod convert;
mod embed;
mod inputs;
mod logger;
mod model_args;
mod output;
mod similarity;
mod synth;

use std::process::ExitCode;

/// A failed write to stdout.
#[derive(Debug)]
struct StdoutError(std::io::Error);

impl std::fmt::Display for StdoutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "failed to write the output to stdout: {}", self.0)
    }
}

impl std::error::Error for StdoutError {}

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// CPU inference for the Jina CLIP v1 embedding model.
#[derive(Parser, Debug)]
#[command(name = "jclip", version, about)]
struct Cli {
    /// Log progress and timings to stderr.
    #[arg(short, long, global = true)]
    verbose: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Embed texts and images into vectors.
    Embed(embed::EmbedArgs),
    /// Cosine similarity and CLIP probabilities between texts and images.
    Similarity(similarity::SimilarityArgs),
    /// Zero-shot classification of images against text labels.
    Classify(similarity::ClassifyArgs),
    /// Write a model directory with packed f32, f16, bf16 or int8 weights that load in place.
    Convert(convert::ConvertArgs),
    /// Write a synthetic checkpoint with deterministic weights in the real layout.
    Synth(synth::SynthArgs),
    /// Show the CPU features and the kernel tier, and describe a model directory.
    Info(InfoArgs),
    /// Measure latency, throughput, GFLOP/s and memory on a model directory.
    Bench(bench::BenchArgs),
}

/// Arguments of `jclip info`.
#[derive(clap::Args, Debug)]
struct InfoArgs {
    /// Also describe the model in this directory.
    #[arg(long, value_name = "DIR")]
    model: Option<std::path::PathBuf>,
}

fn main() -> ExitCode {
    bench::record_main_entry();
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    logger::init(cli.verbose);
    let result = match &cli.command {
        Command::Embed(args) => {
            let sub = matches.subcommand_matches("embed").expect("clap parsed the embed subcommand");
            embed::run(args, sub)
        }
        Command::Similarity(args) => {
            let sub = matches.subcommand_matches("similarity").expect("clap parsed the similarity subcommand");
            similarity::similarity(args, sub)
        }
        Command::Classify(args) => similarity::classify(args),
        Command::Convert(args) => convert::run(args),
        Command::Synth(args) => synth::run(args),
        Command::Info(args) => info(args),
        Command::Bench(args) => bench::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of a pipe exited (`jclip info | head -1`): it has what it wanted.
        Err(error)
            if error.downcast_ref::<StdoutError>().is_some_and(|e| e.0.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(error) => {
            let mut message = format!("error: {}", with_flag_names(error.as_ref()));
            let mut source = std::error::Error::source(error.as_ref());
            while let Some(cause) = source {
                // Library errors already include their source in the message.
                let text = cause.to_string();
                if !message.contains(&text) {
                    message.push_str(&format!("\n  caused by: {text}"));
                }
                source = cause.source();
            }
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

/// The error type of every subcommand.
type CliResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// Returns the message of `error`, naming the command-line flag where the
/// library names one of its options (`max_length` is `--max-length`).
fn with_flag_names(error: &(dyn std::error::Error + Send + Sync + 'static)) -> String {
    if let Some(jclip::Error::InvalidOption { name, value, reason }) = error.downcast_ref::<jclip::Error>() {
        if *name == jclip::options::THREADS_ENV {
            return format!("invalid environment variable {name}={value}: {reason}");
        }
        let flag = match *name {
            "precision" => "dtype",
            "max_length" => "max-length",
            "batch_tokens" => "batch-tokens",
            other => other,
        };
        return format!("invalid option --{flag} = {value}: {reason}");
    }
    error.to_string()
}

fn info(args: &InfoArgs) -> CliResult {
    let detected = jclip::Isa::best_supported();
    let supported: Vec<&str> = jclip::Isa::supported().iter().map(|isa| isa.name()).collect();
    let kernels = jclip_kernels::Kernels::detect()?;
    outln!("jclip {}", env!("CARGO_PKG_VERSION"));
    outln!("kernel tier: {} (best supported: {detected}; supported: {})", kernels.isa(), supported.join(", "));
    outln!("cpu features: {}", jclip_kernels::CpuFeatures::detect().names().join(" "));
    outln!("threads available: {}", std::thread::available_parallelism().map_or(1, |n| n.get()));
    if let Some(dir) = &args.model {
        let model = jclip::Model::open(dir, &jclip::ModelOptions::default())?;
        let text = &model.config().text;
        outln!("model: {}", dir.display());
        outln!(
            "weights: {} ({})",
            model.precision(),
            if model.weights_in_place() { "packed by jclip convert, mapped in place" } else { "packed at load" }
        );
        let text_dim = model.text_dim();
        let dims = match model.image_dim() {
            Some(image_dim) if image_dim != text_dim => format!("{text_dim} values per text, {image_dim} per image"),
            Some(_) => format!("{text_dim} values per text or image"),
            None => format!("{text_dim} values per text"),
        };
        outln!("embedding: {dims}");
        outln!(
            "text tower: {} layers, hidden {}, {} heads, GEGLU {}, vocabulary {}",
            text.num_layers,
            text.hidden_size,
            text.num_heads,
            text.intermediate_size,
            text.vocab_size
        );
        match &model.config().vision {
            Some(vision) => outln!(
                "image tower: {} blocks, width {}, {} heads, SwiGLU {}, {} px in patches of {}",
                vision.num_layers,
                vision.width,
                vision.num_heads(),
                vision.mlp_hidden,
                vision.image_size,
                vision.patch_size
            ),
            None => outln!("image tower: none (text-only model)"),
        }
        if let Some(scale) = model.logit_scale() {
            outln!("logit_scale: {scale} (exp = {})", scale.exp());
        }
    }
    Ok(())
}
