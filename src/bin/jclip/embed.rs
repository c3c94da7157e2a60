//! `jclip embed`: embed texts and write the vectors.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

use clap::ArgMatches;

use crate::CliResult;
use crate::inputs::{Input, read_lines};
use crate::output::{self, Format, Record};

/// Arguments of `jclip embed`.
#[derive(clap::Args, Debug)]
pub struct EmbedArgs {
    /// Model directory with config.json, model.safetensors and tokenizer.json.
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,

    /// A text to embed; repeat for several.
    #[arg(long = "text", value_name = "TEXT")]
    pub texts: Vec<String>,

    /// A file with one text per line ("-" reads stdin); repeatable.
    #[arg(long = "texts-file", value_name = "FILE")]
    pub texts_files: Vec<PathBuf>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Jsonl)]
    pub format: Format,

    /// Write to this file instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Return the raw pooled vectors instead of L2-normalised ones.
    #[arg(long)]
    pub no_normalize: bool,

    /// Token limit per text, including [CLS] and [SEP].
    #[arg(long, value_name = "N", default_value_t = jclip::text::tokenizer::DEFAULT_MAX_LENGTH)]
    pub max_length: usize,

    /// Worker threads (default: JCLIP_THREADS, else the CPUs available).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

/// Collects the inputs in command-line order.
fn collect_inputs(args: &EmbedArgs, matches: &ArgMatches) -> Result<Vec<Input>, String> {
    let mut positioned: Vec<(usize, Vec<Input>)> = Vec::new();
    let indices = |id: &str| matches.indices_of(id).map(|i| i.collect::<Vec<_>>()).unwrap_or_default();
    for (text, index) in args.texts.iter().zip(indices("texts")) {
        positioned.push((index, vec![Input::Text(text.clone())]));
    }
    for (path, index) in args.texts_files.iter().zip(indices("texts_files")) {
        positioned.push((index, read_lines(path)?.into_iter().map(Input::Text).collect()));
    }
    positioned.sort_by_key(|(index, _)| *index);
    Ok(positioned.into_iter().flat_map(|(_, inputs)| inputs).collect())
}

pub fn run(args: &EmbedArgs, matches: &ArgMatches) -> CliResult {
    let inputs = collect_inputs(args, matches)?;
    if inputs.is_empty() {
        return Err("nothing to embed: give --text TEXT or --texts-file FILE".into());
    }
    if args.format == Format::Npy && args.output.is_none() && std::io::stdout().is_terminal() {
        return Err("--format npy writes binary data; redirect stdout or give --output FILE".into());
    }

    let mut options = jclip::ModelOptions::default().max_length(args.max_length);
    options.threads = args.threads;
    let started = Instant::now();
    let model = jclip::Model::open(&args.model, &options)?;
    log::info!(
        "loaded {} in {:.0} ms ({} kernels, {} threads)",
        args.model.display(),
        started.elapsed().as_secs_f64() * 1e3,
        model.isa(),
        model.threads()
    );

    let texts: Vec<&str> = inputs
        .iter()
        .map(|input| match input {
            Input::Text(text) => text.as_str(),
        })
        .collect();
    let started = Instant::now();
    let normalize = !args.no_normalize;
    let embeddings = model.embed_texts(&texts, normalize)?;
    log::info!("embedded {} texts in {:.1} ms", texts.len(), started.elapsed().as_secs_f64() * 1e3);

    let records: Vec<Record<'_>> = inputs
        .iter()
        .zip(&embeddings)
        .map(|(input, result)| Record {
            kind: input.kind(),
            input: input.label(),
            tokens: Some(result.tokens),
            truncated: Some(result.truncated),
            embedding: &result.embedding,
        })
        .collect();
    let model_name = args.model.display().to_string();
    match &args.output {
        Some(path) => {
            let file = std::fs::File::create(path).map_err(|e| format!("failed to create {}: {e}", path.display()))?;
            let mut writer = std::io::BufWriter::new(file);
            output::write(&mut writer, args.format, &model_name, normalize, &records)?;
            writer.flush()?;
        }
        None => {
            let stdout = std::io::stdout();
            let mut writer = std::io::BufWriter::new(stdout.lock());
            output::write(&mut writer, args.format, &model_name, normalize, &records)?;
        }
    }
    Ok(())
}
