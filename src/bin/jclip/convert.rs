//! `jclip convert`: write a model directory with packed weights of a chosen precision.

use std::path::PathBuf;
use std::time::Instant;

use jclip::Precision;

use crate::CliResult;

/// Arguments of `jclip convert`.
#[derive(clap::Args, Debug)]
pub struct ConvertArgs {
    /// Model directory to read (a Hugging Face checkpoint of jina-clip-v1).
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,

    /// Precision of the linear layers' weights: f32, f16, bf16, int8.
    #[arg(long, value_name = "DTYPE")]
    pub dtype: Precision,

    /// Directory to write; it must not exist or be empty.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

pub fn run(args: &ConvertArgs) -> CliResult {
    let started = Instant::now();
    let summary = jclip::convert::convert(&args.model, &args.out, args.dtype)?;
    let formats: Vec<String> = summary.formats.iter().map(|(format, count)| format!("{count} {format}")).collect();
    eprintln!(
        "wrote {} ({:.0} MB): {} packed matrices ({}), {} tensors copied, {} other files, in {:.1} s",
        summary.weights.display(),
        summary.weight_bytes as f64 / 1e6,
        summary.matrices,
        formats.join(", "),
        summary.copied,
        summary.files.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
