//! `jclip similarity` and `jclip classify`: compare texts with images.

use clap::ArgMatches;
use serde::Serialize;

use crate::CliResult;
use crate::inputs::{self, InputArgs, ListLine};
use crate::model_args::ModelArgs;

/// Output format of the comparison commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TableFormat {
    /// Aligned text for reading.
    Table,
    /// One JSON document.
    Json,
}

/// Arguments of `jclip similarity`.
#[derive(clap::Args, Debug)]
pub struct SimilarityArgs {
    #[command(flatten)]
    pub model: ModelArgs,

    #[command(flatten)]
    pub inputs: InputArgs,

    /// Output format.
    #[arg(long, value_enum, default_value_t = TableFormat::Table)]
    pub format: TableFormat,
}

/// Arguments of `jclip classify`.
#[derive(clap::Args, Debug)]
pub struct ClassifyArgs {
    #[command(flatten)]
    pub model: ModelArgs,

    /// An image file to classify; repeatable.
    #[arg(long = "image", value_name = "PATH", required = true)]
    pub images: Vec<std::path::PathBuf>,

    /// Candidate labels, separated by commas.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub labels: Vec<String>,

    /// One candidate label (may contain commas); repeatable.
    #[arg(long = "label", value_name = "LABEL")]
    pub extra_labels: Vec<String>,

    /// Prompt template; "{}" is replaced by each label.
    #[arg(long, value_name = "TEMPLATE", default_value = "{}")]
    pub template: String,

    /// Show only the N most probable labels per image (0 shows all).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub top: usize,

    /// Output format.
    #[arg(long, value_enum, default_value_t = TableFormat::Table)]
    pub format: TableFormat,
}

/// Cosine similarities of every text with every image, `[texts][images]`.
fn cosine_matrix(texts: &[Vec<f32>], images: &[Vec<f32>]) -> Vec<Vec<f64>> {
    texts
        .iter()
        .map(|t| images.iter().map(|i| t.iter().zip(i).map(|(&a, &b)| a as f64 * b as f64).sum()).collect())
        .collect()
}

/// Softmax of `scale·x` in f64.
fn softmax(values: &[f64], scale: f64) -> Vec<f64> {
    let max = values.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let exps: Vec<f64> = values.iter().map(|v| ((v - max) * scale).exp()).collect();
    let total: f64 = exps.iter().sum();
    exps.into_iter().map(|e| e / total).collect()
}

/// Normalised embeddings of texts and of images, one vector per input.
struct EmbeddedPair {
    texts: Vec<Vec<f32>>,
    images: Vec<Vec<f32>>,
}

/// Embeds texts and images (normalised) and checks they share one space.
fn embed_pair(
    model: &jclip::Model,
    (texts, text_lines): (&[String], &[Option<ListLine>]),
    (images, image_lines): (&[std::path::PathBuf], &[Option<ListLine>]),
) -> Result<EmbeddedPair, Box<dyn std::error::Error + Send + Sync>> {
    let text_vectors: Vec<Vec<f32>> = model
        .embed_texts(texts, true)
        .map_err(|error| inputs::locate(error, text_lines))?
        .into_iter()
        .map(|e| e.embedding)
        .collect();
    let image_vectors: Vec<Vec<f32>> = model
        .embed_image_files(images, true)
        .map_err(|error| inputs::locate(error, image_lines))?
        .into_iter()
        .map(|e| e.embedding)
        .collect();
    if let (Some(t), Some(i)) = (text_vectors.first(), image_vectors.first())
        && t.len() != i.len()
    {
        return Err(format!(
            "this model's text embeddings have {} values and its image embeddings {}; they cannot be compared",
            t.len(),
            i.len()
        )
        .into());
    }
    Ok(EmbeddedPair { texts: text_vectors, images: image_vectors })
}

/// The temperature `exp(logit_scale)`, or an error saying why probabilities are unavailable.
fn temperature(model: &jclip::Model) -> Result<f64, String> {
    model.logit_scale().map(|s| (s as f64).exp()).ok_or_else(|| {
        format!("{} has no logit_scale tensor, so CLIP probabilities cannot be computed", model.dir().display())
    })
}

#[derive(Serialize)]
struct SimilarityReport<'a> {
    texts: &'a [String],
    images: Vec<String>,
    /// `[texts][images]`.
    cosine: &'a [Vec<f64>],
    logit_scale: Option<f32>,
    /// `[images][texts]`: for each image, the softmax over the texts.
    probabilities: Option<Vec<Vec<f64>>>,
}

pub fn similarity(args: &SimilarityArgs, matches: &ArgMatches) -> CliResult {
    let collected = args.inputs.collect(matches)?;
    let (texts, text_lines) = collected.texts();
    let (images, image_lines) = collected.images();
    if texts.is_empty() || images.is_empty() {
        return Err(
            "similarity needs at least one text (--text, --texts-file) and one image (--image, --images-file)".into()
        );
    }
    let model = args.model.open()?;
    let pair = embed_pair(&model, (&texts, &text_lines), (&images, &image_lines))?;
    let cosine = cosine_matrix(&pair.texts, &pair.images);
    let probabilities = temperature(&model).ok().map(|scale| {
        (0..images.len()).map(|i| softmax(&cosine.iter().map(|row| row[i]).collect::<Vec<_>>(), scale)).collect()
    });
    if probabilities.is_none() {
        log::warn!("{}", temperature(&model).unwrap_err());
    }
    let image_names: Vec<String> = images.iter().map(|p| p.display().to_string()).collect();
    match args.format {
        TableFormat::Json => {
            let report = SimilarityReport {
                texts: &texts,
                images: image_names,
                cosine: &cosine,
                logit_scale: model.logit_scale(),
                probabilities,
            };
            outln!("{}", serde_json::to_string_pretty(&report)?);
        }
        TableFormat::Table => {
            outln!("cosine similarity (rows: texts, columns: images)");
            print_matrix(&texts, &image_names, |t, i| format!("{:.4}", cosine[t][i]))?;
            if let Some(probabilities) = probabilities {
                let scale = temperature(&model)?;
                outln!();
                outln!("probability of each text for each image (softmax of {scale:.2}·cosine over the texts)");
                print_matrix(&texts, &image_names, |t, i| format!("{:.4}", probabilities[i][t]))?;
            }
        }
    }
    Ok(())
}

fn print_matrix(
    rows: &[String],
    columns: &[String],
    cell: impl Fn(usize, usize) -> String,
) -> Result<(), crate::StdoutError> {
    let shorten = |s: &str, n: usize| -> String {
        if s.chars().count() > n { format!("{}…", s.chars().take(n - 1).collect::<String>()) } else { s.to_string() }
    };
    // Keeps the end of a path, where the names that tell columns apart are.
    let shorten_start = |s: &str, n: usize| -> String {
        let count = s.chars().count();
        if count > n { format!("…{}", s.chars().skip(count + 1 - n).collect::<String>()) } else { s.to_string() }
    };
    let row_label = |row: &str| if row.is_empty() { "(empty text)".to_string() } else { shorten(row, 40) };
    let row_width = rows.iter().map(|r| row_label(r).chars().count()).max().unwrap_or(0).max(4);
    let file_name = |c: &str| std::path::Path::new(c).file_name().and_then(|n| n.to_str()).unwrap_or(c).to_string();
    // File names alone, unless two columns share one: then the paths as given.
    let names: Vec<String> = columns.iter().map(|c| file_name(c)).collect();
    let unique = names.iter().enumerate().all(|(i, name)| !names[..i].contains(name));
    let headers: Vec<String> = if unique {
        names.iter().map(|name| shorten(name, 16)).collect()
    } else {
        columns.iter().map(|c| shorten_start(c, 24)).collect()
    };
    let widths: Vec<usize> = headers.iter().map(|h| h.chars().count().max(8)).collect();
    let mut line = format!("{:row_width$}", "");
    for (header, width) in headers.iter().zip(&widths) {
        line.push_str(&format!("  {header:>width$}"));
    }
    outln!("{line}");
    for (r, row) in rows.iter().enumerate() {
        let mut line = format!("{:row_width$}", row_label(row));
        for (c, width) in widths.iter().enumerate() {
            line.push_str(&format!("  {:>width$}", cell(r, c)));
        }
        outln!("{line}");
    }
    Ok(())
}

#[derive(Serialize)]
struct LabelScore<'a> {
    label: &'a str,
    prompt: String,
    probability: f64,
    cosine: f64,
}

#[derive(Serialize)]
struct Classification<'a> {
    image: String,
    labels: Vec<LabelScore<'a>>,
}

pub fn classify(args: &ClassifyArgs) -> CliResult {
    let labels: Vec<String> =
        args.labels.iter().chain(&args.extra_labels).map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect();
    if labels.len() < 2 {
        return Err("classify needs at least two labels: --labels \"a cat,a dog\" or repeated --label".into());
    }
    if let Some((index, label)) = labels.iter().enumerate().find(|(index, label)| labels[..*index].contains(label)) {
        return Err(format!("label {label:?} is given twice (label {}); list each label once", index + 1).into());
    }
    if !args.template.contains("{}") {
        return Err(format!("--template {:?} has no {{}} where the label goes", args.template).into());
    }
    let prompts: Vec<String> = labels.iter().map(|l| args.template.replace("{}", l)).collect();
    let model = args.model.open()?;
    let scale = temperature(&model)?;
    let pair = embed_pair(&model, (&prompts, &[]), (&args.images, &[]))?;
    let cosine = cosine_matrix(&pair.texts, &pair.images);
    let mut results = Vec::new();
    for (i, image) in args.images.iter().enumerate() {
        let column: Vec<f64> = cosine.iter().map(|row| row[i]).collect();
        let probabilities = softmax(&column, scale);
        let mut scores: Vec<LabelScore<'_>> = labels
            .iter()
            .zip(&prompts)
            .zip(probabilities.iter().zip(&column))
            .map(|((label, prompt), (&probability, &cosine))| LabelScore {
                label,
                prompt: prompt.clone(),
                probability,
                cosine,
            })
            .collect();
        scores.sort_by(|a, b| b.probability.total_cmp(&a.probability));
        if args.top > 0 {
            scores.truncate(args.top);
        }
        results.push(Classification { image: image.display().to_string(), labels: scores });
    }
    match args.format {
        TableFormat::Json => outln!("{}", serde_json::to_string_pretty(&results)?),
        TableFormat::Table => {
            for (index, result) in results.iter().enumerate() {
                if index > 0 {
                    outln!();
                }
                outln!("{}", result.image);
                let width = result.labels.iter().map(|s| s.label.chars().count()).max().unwrap_or(0);
                for score in &result.labels {
                    outln!(
                        "  {:width$}  {:6.2}%  (cosine {:.4})",
                        score.label,
                        score.probability * 100.0,
                        score.cosine
                    );
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_sums_to_one_and_orders() {
        let p = softmax(&[0.1, 0.3, 0.2], 100.0);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(p[1] > p[2] && p[2] > p[0]);
    }
}
