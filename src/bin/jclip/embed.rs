//! `jclip embed`: embed texts and images and write the vectors.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

use clap::ArgMatches;

use crate::CliResult;
use crate::inputs::InputArgs;
use crate::model_args::ModelArgs;
use crate::output::{self, Format, Record};

/// Arguments of `jclip embed`.
#[derive(clap::Args, Debug)]
pub struct EmbedArgs {
    #[command(flatten)]
    pub model: ModelArgs,

    #[command(flatten)]
    pub inputs: InputArgs,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Jsonl)]
    pub format: Format,

    /// Write to this file instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Return the raw pooled vectors instead of L2-normalised ones.
    #[arg(long)]
    pub no_normalize: bool,
}

pub fn run(args: &EmbedArgs, matches: &ArgMatches) -> CliResult {
    let collected = args.inputs.collect(matches)?;
    let inputs = &collected.inputs;
    if inputs.is_empty() {
        return Err(args.inputs.nothing_given().into());
    }
    if args.format == Format::Npy && args.output.is_none() && std::io::stdout().is_terminal() {
        return Err("--format npy writes binary data; redirect stdout or give --output FILE".into());
    }
    let model = args.model.open()?;

    let started = Instant::now();
    let normalize = !args.no_normalize;
    let library_inputs: Vec<jclip::Input<'_>> = inputs.iter().map(|input| input.as_library_input()).collect();
    let embeddings = model.embed(&library_inputs, normalize).map_err(|error| collected.locate(error))?;
    let noun = if inputs.len() == 1 { "input" } else { "inputs" };
    log::info!("embedded {} {noun} in {:.1} ms", inputs.len(), started.elapsed().as_secs_f64() * 1e3);

    let labels: Vec<String> = inputs.iter().map(|input| input.label()).collect();
    let records: Vec<Record<'_>> = inputs
        .iter()
        .zip(&labels)
        .zip(&embeddings)
        .map(|((input, label), result)| Record {
            kind: input.kind(),
            input: label,
            tokens: result.tokens,
            truncated: (result.modality == jclip::Modality::Text).then_some(result.truncated),
            embedding: &result.embedding,
        })
        .collect();
    let model_name = args.model.model.display().to_string();
    match &args.output {
        Some(path) => {
            let file = std::fs::File::create(path).map_err(|e| format!("failed to create {}: {e}", path.display()))?;
            let mut writer = std::io::BufWriter::new(file);
            output::write(&mut writer, args.format, &model_name, normalize, &records)
                .and_then(|()| Ok(writer.flush()?))
                .map_err(|e| match write_failure(e) {
                    Ok(io) => format!("failed to write {}: {io}", path.display()).into(),
                    Err(other) => other,
                })?;
        }
        None => {
            let stdout = std::io::stdout();
            let mut writer = std::io::BufWriter::new(stdout.lock());
            // A failed write becomes a `StdoutError`, which `main` reports,
            // or ignores for a closed pipe, as for the other subcommands.
            output::write(&mut writer, args.format, &model_name, normalize, &records)
                .and_then(|()| Ok(writer.flush()?))
                .map_err(|e| match write_failure(e) {
                    Ok(io) => Box::new(crate::StdoutError(io)),
                    Err(other) => other,
                })?;
        }
    }
    Ok(())
}

/// Returns the I/O error that `error` carries when the output could not be
/// written, and any other error (such as mixed widths for npy) unchanged.
fn write_failure(
    error: Box<dyn std::error::Error + Send + Sync>,
) -> Result<std::io::Error, Box<dyn std::error::Error + Send + Sync>> {
    let error = match error.downcast::<std::io::Error>() {
        Ok(io) => return Ok(*io),
        Err(error) => error,
    };
    match error.downcast::<serde_json::Error>() {
        Ok(json) if json.io_error_kind().is_some() => Ok(std::io::Error::from(*json)),
        Ok(json) => Err(json),
        Err(error) => Err(error),
    }
}
