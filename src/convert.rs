//! `jclip convert`: write a model directory whose weights are already packed.
//!
//! The output directory contains the same configuration, tokenizer and
//! preprocessor files as the input, and a `model.safetensors` in the packed
//! format of [`crate::weights::packed`]. Opening it maps the packed weights
//! and uses them in place: no packing and no copy at load.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::layers::Packer;
use crate::precision::Precision;
use crate::text::TextTower;
use crate::vision::VisionTower;
use crate::weights::packed::PackedWriter;
use crate::weights::{Checkpoint, SHARD_INDEX, SINGLE_FILE};

/// Summary of a finished conversion.
#[derive(Clone, Debug)]
pub struct ConvertSummary {
    /// The written `model.safetensors`.
    pub weights: PathBuf,
    /// Its size in bytes.
    pub weight_bytes: u64,
    /// Packed matrices, and how many of them use each weight format.
    pub matrices: usize,
    pub formats: Vec<(String, usize)>,
    /// Tensors copied unchanged (norms, biases, embeddings).
    pub copied: usize,
    /// Other files copied (configuration, tokenizer, preprocessor).
    pub files: Vec<PathBuf>,
}

/// Converts the model directory `input` to `precision`, writing `output`.
///
/// `output` must not exist or be an empty directory, and must differ from
/// `input`. The input may be a Hugging Face checkpoint (single file or
/// sharded) or a directory written by an earlier conversion to the same
/// precision.
pub fn convert(input: &Path, output: &Path, precision: Precision) -> Result<ConvertSummary> {
    check_output(input, output)?;
    let config = ModelConfig::from_file(&input.join("config.json"))?;
    let checkpoint = Arc::new(Checkpoint::open_dir(input)?);
    if let Some(layout) = checkpoint.packed_layout()
        && layout.precision != precision
    {
        return Err(Error::InvalidOption {
            name: "dtype",
            value: precision.name().into(),
            reason: format!(
                "{} was already converted to {}; convert the original checkpoint instead",
                input.display(),
                layout.precision
            ),
        });
    }
    // Building the towers packs (and for int8 quantises) every matrix
    // exactly as opening the model would; the packer keeps each one.
    let packer = Packer::recording(&checkpoint, precision);
    let text = TextTower::load(&checkpoint, &config.text, &packer)?;
    let vision = config.vision.as_ref().map(|vision| VisionTower::load(&checkpoint, vision, &packer)).transpose()?;
    drop((text, vision));
    let records = packer.into_records();

    let mut writer = PackedWriter::new(precision, quantization(precision).into(), block_size(precision).into());
    let mut folded = HashSet::new();
    for record in &records {
        let sources: Vec<_> = record.sources.iter().filter_map(|name| checkpoint.get(name)).collect();
        folded.extend(record.sources.iter().cloned());
        writer.packed(record.key.clone(), &record.matrix, &sources);
    }
    let mut names: Vec<&str> = checkpoint.names().filter(|name| !folded.contains(*name)).collect();
    names.sort_unstable();
    let mut copied = 0;
    for name in names {
        let tensor = checkpoint.get(name).expect("the name comes from the checkpoint");
        // Packed tensors of an earlier conversion are rewritten from the records.
        if tensor.is_packed()
            || name.starts_with(crate::weights::packed::PACKED_PREFIX)
            || name.starts_with("jclip.pad/")
        {
            continue;
        }
        writer.copy(tensor);
        copied += 1;
    }

    std::fs::create_dir_all(output).map_err(|source| Error::write(output, source))?;
    let files = copy_side_files(input, output)?;
    let weights = output.join(SINGLE_FILE);
    let weight_bytes = writer.write(&weights)?;
    let mut formats: Vec<(String, usize)> = Vec::new();
    for record in &records {
        let name = record.matrix.format().name().to_string();
        match formats.iter_mut().find(|(known, _)| *known == name) {
            Some((_, count)) => *count += 1,
            None => formats.push((name, 1)),
        }
    }
    Ok(ConvertSummary { weights, weight_bytes, matrices: records.len(), formats, copied, files })
}

fn quantization(precision: Precision) -> &'static str {
    match precision {
        Precision::F32 | Precision::F16 | Precision::BF16 => "none",
        Precision::Int8 => {
            "int8 weights, symmetric, one f32 scale per output feature (max|w|/127, round half to even); \
             activations quantised per token at run time the same way"
        }
    }
}

fn block_size(precision: Precision) -> &'static str {
    match precision {
        Precision::F32 | Precision::F16 | Precision::BF16 => "none",
        // One scale covers a whole row of W: every input feature.
        Precision::Int8 => "per-channel",
    }
}

/// Refuses an output that would overwrite the input or other files.
fn check_output(input: &Path, output: &Path) -> Result<()> {
    let invalid = |reason: String| Error::InvalidOption { name: "out", value: output.display().to_string(), reason };
    if let (Ok(a), Ok(b)) = (input.canonicalize(), output.canonicalize())
        && a == b
    {
        return Err(invalid("the output directory is the input directory; choose a new directory".into()));
    }
    if output.exists() {
        if !output.is_dir() {
            return Err(invalid("exists and is not a directory; choose a new directory".into()));
        }
        let mut entries = std::fs::read_dir(output).map_err(|source| Error::io(output, source))?;
        if entries.next().is_some() {
            return Err(invalid("the directory is not empty; choose a new or empty directory".into()));
        }
    }
    Ok(())
}

/// Copies every regular file of `input` except the weights.
fn copy_side_files(input: &Path, output: &Path) -> Result<Vec<PathBuf>> {
    let mut copied = Vec::new();
    let entries = std::fs::read_dir(input).map_err(|source| Error::io(input, source))?;
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| Error::io(input, source))?;
        paths.push(entry.path());
    }
    paths.sort();
    for path in paths {
        let Some(name) = path.file_name().and_then(|name| name.to_str()) else { continue };
        let weights = name.ends_with(".safetensors") || name == SHARD_INDEX || name.ends_with(".bin");
        if weights || !path.is_file() {
            continue;
        }
        let target = output.join(name);
        std::fs::copy(&path, &target).map_err(|source| Error::io(&path, source))?;
        copied.push(target);
    }
    Ok(copied)
}
