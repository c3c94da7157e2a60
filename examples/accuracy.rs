//! Measures how close each precision stays to f32: the cosine similarity of
//! every embedding to the f32 embedding of the same input, for short texts,
//! texts of about 64 and 512 tokens, and photos. Prints a Markdown table.
//!
//!     cargo run --release --example accuracy -- --model DIR [--image PHOTO ...]
//!
//! Without `--image` it uses the photos in tests/fixtures/images.

use std::path::PathBuf;

use jclip::{Model, ModelOptions, Precision};

const CAPTIONS: &[&str] = &[
    "a photo of a cat",
    "an astronaut on the moon",
    "a cup of coffee on a wooden table",
    "a rocket lifting off at dawn",
    "two dogs playing in the snow",
    "a black and white portrait of a man with a camera",
    "a bowl of fresh fruit",
    "a city skyline at night",
];

const PASSAGE: &str = "The harbour town wakes slowly. Fishing boats return with the tide, gulls circle the \
    market stalls, and the smell of bread drifts from the bakery on the corner. By noon the square is full \
    of visitors who photograph the old stone church, buy postcards, and sit in the shade of the plane trees. ";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut model_dir = None;
    let mut images = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--model" => model_dir = args.next().map(PathBuf::from),
            "--image" => images.extend(args.next().map(PathBuf::from)),
            other => return Err(format!("unknown argument {other}; use --model DIR [--image PATH ...]").into()),
        }
    }
    let model_dir = model_dir.ok_or("give the model directory with --model DIR")?;
    if images.is_empty() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/images");
        let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
        found.sort();
        images = found;
    }

    let medium: Vec<String> = (0..4).map(|i| format!("{} {PASSAGE}", CAPTIONS[i])).collect();
    let long: Vec<String> = (0..2).map(|i| format!("{} {}", CAPTIONS[i], PASSAGE.repeat(12))).collect();
    let groups: Vec<(&str, Vec<String>)> = vec![
        ("short texts", CAPTIONS.iter().map(|s| s.to_string()).collect()),
        ("texts of ~64 tokens", medium),
        ("texts of 512 tokens", long),
    ];

    // The vectors of each group's inputs, and the longest token count of each text group.
    type Measured = (Vec<Vec<Vec<f32>>>, Vec<usize>);
    let embed = |precision: Precision| -> Result<Measured, jclip::Error> {
        let model = Model::open(&model_dir, &ModelOptions::default().precision(precision))?;
        let mut out = Vec::new();
        let mut tokens = Vec::new();
        for (_, texts) in &groups {
            let embeddings = model.embed_texts(texts, true)?;
            tokens.push(embeddings.iter().map(|e| e.tokens).max().unwrap_or(0));
            out.push(embeddings.into_iter().map(|e| e.embedding).collect());
        }
        out.push(model.embed_image_files(&images, true)?.into_iter().map(|e| e.embedding).collect());
        Ok((out, tokens))
    };

    let (reference, tokens) = embed(Precision::F32)?;
    println!(
        "| precision | {} | {} photos |",
        groups
            .iter()
            .zip(&tokens)
            .map(|((name, texts), t)| format!("{} {name} (≤ {t} tokens)", texts.len()))
            .collect::<Vec<_>>()
            .join(" | "),
        images.len()
    );
    println!("|---|{}---|", "---|".repeat(groups.len()));
    for &precision in Precision::ALL.iter().filter(|&&p| p != Precision::F32) {
        let (vectors, _) = embed(precision)?;
        let mut cells = Vec::new();
        for (group, expected) in vectors.iter().zip(&reference) {
            let cosines: Vec<f64> = group.iter().zip(expected).map(|(a, b)| cosine(a, b)).collect();
            let mean = cosines.iter().sum::<f64>() / cosines.len() as f64;
            let min = cosines.iter().copied().fold(f64::INFINITY, f64::min);
            cells.push(format!("{mean:.6} / {min:.6}"));
        }
        println!("| {precision} | {} |", cells.join(" | "));
    }
    Ok(())
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum();
    let na: f64 = a.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}
