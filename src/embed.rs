//! Embedding requests: texts and images in one call, batched by a token
//! budget, results in input order.

use std::ops::Range;
use std::path::Path;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::model::{ImageSide, Model};
use crate::precision::Precision;
use crate::preprocess::{self, RgbImage};
use crate::text::{EncodedText, TokenBatch};

/// One input to embed.
#[derive(Clone, Copy, Debug)]
pub enum Input<'a> {
    /// UTF-8 text.
    Text(&'a str),
    /// An image file (JPEG, PNG, WebP, GIF, BMP or TIFF).
    ImageFile(&'a Path),
    /// An encoded image file in memory.
    ImageBytes(&'a [u8]),
    /// Decoded RGB pixels.
    Rgb(&'a RgbImage),
}

/// The tower that produced an embedding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Modality {
    Text,
    Image,
}

impl Modality {
    pub fn name(self) -> &'static str {
        match self {
            Modality::Text => "text",
            Modality::Image => "image",
        }
    }
}

/// The embedding of one input.
#[derive(Clone, Debug, PartialEq)]
pub struct Embedding {
    pub modality: Modality,
    pub embedding: Vec<f32>,
    /// Tokens the tower saw: for a text including `[CLS]` and `[SEP]`, for an
    /// image its patches plus CLS.
    pub tokens: usize,
    /// Whether a text was cut at the token limit (always false for images).
    pub truncated: bool,
}

/// Alias kept for callers that embed texts only.
pub type TextEmbedding = Embedding;

impl Model {
    /// Embeds texts and images in one call, L2-normalised when `normalize` is
    /// set, returning one embedding per input in input order. Texts go through
    /// the text tower and images through the image tower, in batches of at
    /// most the token budget. Every input gets the same vector it would get alone.
    pub fn embed(&self, inputs: &[Input<'_>], normalize: bool) -> Result<Vec<Embedding>> {
        let mut text_indices = Vec::new();
        let mut image_indices = Vec::new();
        for (index, input) in inputs.iter().enumerate() {
            match input {
                Input::Text(_) => text_indices.push(index),
                _ => image_indices.push(index),
            }
        }
        let side = if image_indices.is_empty() {
            None
        } else {
            Some(self.image.as_ref().ok_or_else(|| {
                Error::MissingTower(format!(
                    "input {} is an image, but {} is a text-only model without an image tower",
                    image_indices[0],
                    self.dir.display()
                ))
            })?)
        };

        let mut results: Vec<Option<Embedding>> = vec![None; inputs.len()];
        let texts: Vec<&str> = text_indices
            .iter()
            .map(|&i| match inputs[i] {
                Input::Text(text) => text,
                _ => unreachable!("text indices hold texts"),
            })
            .collect();
        let encoded = self.encode_texts_at(&texts, &text_indices)?;
        for (offset, embedding) in self.run_texts(&encoded, &text_indices, normalize)?.into_iter().enumerate() {
            results[text_indices[offset]] = Some(embedding);
        }
        if let Some(side) = side {
            let images: Vec<Input<'_>> = image_indices.iter().map(|&i| inputs[i]).collect();
            for (offset, embedding) in
                self.run_images(side, &images, &image_indices, normalize)?.into_iter().enumerate()
            {
                results[image_indices[offset]] = Some(embedding);
            }
        }
        Ok(results.into_iter().map(|r| r.expect("every input was embedded")).collect())
    }

    /// Embeds texts, L2-normalised when `normalize` is set, in input order.
    pub fn embed_texts<S: AsRef<str>>(&self, texts: &[S], normalize: bool) -> Result<Vec<Embedding>> {
        let inputs: Vec<Input<'_>> = texts.iter().map(|t| Input::Text(t.as_ref())).collect();
        self.embed(&inputs, normalize)
    }

    /// Embeds image files, L2-normalised when `normalize` is set, in input order.
    pub fn embed_image_files<P: AsRef<Path>>(&self, paths: &[P], normalize: bool) -> Result<Vec<Embedding>> {
        let inputs: Vec<Input<'_>> = paths.iter().map(|p| Input::ImageFile(p.as_ref())).collect();
        self.embed(&inputs, normalize)
    }

    /// Embeds already preprocessed images: `pixels` contains `[images, 3, S, S]`
    /// normalised floats, as [`preprocess::preprocess`] returns them.
    pub fn embed_pixels(&self, pixels: &[f32], images: usize, normalize: bool) -> Result<Vec<Vec<f32>>> {
        let side = self.image.as_ref().ok_or_else(|| {
            Error::MissingTower(format!("{} is a text-only model without an image tower", self.dir.display()))
        })?;
        let per_image = side.tower.pixels_per_image();
        let dim = side.tower.dim();
        let mut out = Vec::with_capacity(images);
        let per_batch = (self.batch_tokens / side.tower.config().tokens_per_image()).max(1);
        for first in (0..images).step_by(per_batch) {
            let count = per_batch.min(images - first);
            let chunk =
                pixels.get(first * per_image..(first + count) * per_image).ok_or_else(|| Error::InvalidOption {
                    name: "pixels",
                    value: format!("{} values", pixels.len()),
                    reason: format!("expected {images} images of {per_image} values"),
                })?;
            let pooled = self.forward_images(side, chunk, count)?;
            for (offset, row) in pooled.chunks_exact(dim).enumerate() {
                out.push(self.finish(row, normalize, || format!("image {}", first + offset))?);
            }
        }
        Ok(out)
    }

    /// Tokenizes `texts` and checks every id against the embedding table.
    pub fn encode_texts<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<EncodedText>> {
        let strings: Vec<&str> = texts.iter().map(AsRef::as_ref).collect();
        let indices: Vec<usize> = (0..texts.len()).collect();
        self.encode_texts_at(&strings, &indices)
    }

    /// Tokenizes texts whose request positions are `indices` (used in errors).
    fn encode_texts_at(&self, texts: &[&str], indices: &[usize]) -> Result<Vec<EncodedText>> {
        let vocab_size = self.config.text.vocab_size;
        let pad = self.config.text.pad_token_id;
        let encoded: Vec<Result<EncodedText>> = self.pool.install(|| {
            texts.par_iter().zip(indices).map(|(text, &index)| self.tokenizer.encode(index, text)).collect()
        });
        let mut result = Vec::with_capacity(texts.len());
        for (tokens, &index) in encoded.into_iter().zip(indices) {
            let tokens = tokens?;
            if let Some(&id) = tokens.ids.iter().find(|&&id| id as usize >= vocab_size) {
                return Err(Error::TokenOutOfRange { index, id, vocab_size });
            }
            if tokens.ids.iter().all(|&id| id == pad) {
                return Err(Error::Tokenizer {
                    context: format!("text {index}"),
                    message:
                        "the tokenizer produced only padding tokens; check that tokenizer.json adds [CLS] and [SEP]"
                            .into(),
                });
            }
            result.push(tokens);
        }
        Ok(result)
    }

    fn run_texts(&self, encoded: &[EncodedText], indices: &[usize], normalize: bool) -> Result<Vec<Embedding>> {
        let dim = self.text.dim();
        let lengths: Vec<usize> = encoded.iter().map(|e| e.ids.len()).collect();
        let mut results = Vec::with_capacity(encoded.len());
        for group in batches_by_tokens(&lengths, self.batch_tokens) {
            let group_lengths = &lengths[group.clone()];
            let lanes = self.lane_count(group.len(), group_lengths.iter().sum());
            let batches: Vec<TokenBatch> = split_evenly(group_lengths, lanes)
                .into_iter()
                .map(|part| {
                    let mut batch = TokenBatch::default();
                    for text in &encoded[group.start + part.start..group.start + part.end] {
                        batch.push(&text.ids);
                    }
                    batch
                })
                .collect();
            let pooled = if lanes > 1 {
                self.run_lanes(batches, |batch| self.text.forward(&self.kernels, &batch, None)).concat()
            } else {
                self.run_pass(|| self.text.forward(&self.kernels, &batches[0], None))
            };
            for (offset, row) in pooled.chunks_exact(dim).enumerate() {
                let local = group.start + offset;
                let embedding = self.finish(row, normalize, || format!("text {}", indices[local]))?;
                results.push(Embedding {
                    modality: Modality::Text,
                    embedding,
                    tokens: encoded[local].ids.len(),
                    truncated: encoded[local].truncated,
                });
            }
        }
        Ok(results)
    }

    fn run_images(
        &self,
        side: &ImageSide,
        images: &[Input<'_>],
        indices: &[usize],
        normalize: bool,
    ) -> Result<Vec<Embedding>> {
        let tokens_per_image = side.tower.config().tokens_per_image();
        let per_batch = (self.batch_tokens / tokens_per_image).max(1);
        let mut results = Vec::with_capacity(images.len());
        for first in (0..images.len()).step_by(per_batch) {
            let group = first..(first + per_batch).min(images.len());
            // Decode and preprocess the batch's images in parallel.
            let prepared: Vec<Result<Vec<f32>>> = self.pool.install(|| {
                images[group.clone()]
                    .par_iter()
                    .zip(&indices[group.clone()])
                    .map(|(input, &index)| prepare_image(side, input).map_err(|source| Error::Image { index, source }))
                    .collect()
            });
            let mut pixels = Vec::with_capacity(group.len() * side.tower.pixels_per_image());
            for image in prepared {
                pixels.extend(image?);
            }
            let pooled = self.forward_images(side, &pixels, group.len())?;
            for (offset, row) in pooled.chunks_exact(side.tower.dim()).enumerate() {
                let index = indices[group.start + offset];
                let embedding = self.finish(row, normalize, || format!("image {index}"))?;
                results.push(Embedding {
                    modality: Modality::Image,
                    embedding,
                    tokens: tokens_per_image,
                    truncated: false,
                });
            }
        }
        Ok(results)
    }

    /// Runs the image tower over `images` preprocessed images, in lanes when
    /// they are enough (see [`Model::lane_count`]).
    fn forward_images(&self, side: &ImageSide, pixels: &[f32], images: usize) -> Result<Vec<f32>> {
        let tokens_per_image = side.tower.config().tokens_per_image();
        let lanes = self.lane_count(images, images * tokens_per_image);
        if lanes < 2 {
            return self.run_pass(|| side.tower.forward(&self.kernels, pixels, images, None));
        }
        let per_image = side.tower.pixels_per_image();
        let parts = split_evenly(&vec![1; images], lanes);
        let pooled = self.run_lanes(parts, |part| {
            let chunk = &pixels[part.start * per_image..part.end * per_image];
            side.tower.forward(&self.kernels, chunk, part.len(), None)
        });
        Ok(pooled.into_iter().collect::<Result<Vec<_>>>()?.concat())
    }

    /// Normalises on request and rejects vectors with NaN or infinite values.
    fn finish(&self, row: &[f32], normalize: bool, input: impl FnOnce() -> String) -> Result<Vec<f32>> {
        let mut embedding = row.to_vec();
        if normalize {
            self.kernels.l2_normalize(&mut embedding);
        }
        if embedding.iter().all(|v| v.is_finite()) {
            Ok(embedding)
        } else {
            let hint = if self.precision == Precision::F32 {
                "model.safetensors or config.json may be corrupt"
            } else {
                "the weights may be corrupt or overflow in this precision; try the f32 weights"
            };
            Err(Error::NonFinite { input: input(), hint: hint.into() })
        }
    }
}

/// Decodes (unless already decoded) and preprocesses one image.
fn prepare_image(side: &ImageSide, input: &Input<'_>) -> Result<Vec<f32>, preprocess::ImageError> {
    let decoded;
    let image = match input {
        Input::ImageFile(path) => {
            decoded = preprocess::decode_file(path, &side.decode)?;
            &decoded
        }
        Input::ImageBytes(bytes) => {
            decoded = preprocess::decode(bytes, &side.decode)?;
            &decoded
        }
        Input::Rgb(image) => *image,
        Input::Text(_) => unreachable!("only images are prepared"),
    };
    preprocess::preprocess(image, &side.preprocess)
}

/// Splits consecutive inputs into groups whose token counts sum to at most
/// `budget`; an input larger than the budget gets a group of its own.
fn batches_by_tokens(lengths: &[usize], budget: usize) -> Vec<Range<usize>> {
    let mut groups = Vec::new();
    let mut start = 0;
    let mut used = 0;
    for (index, &length) in lengths.iter().enumerate() {
        if index > start && used + length > budget {
            groups.push(start..index);
            start = index;
            used = 0;
        }
        used += length;
    }
    if start < lengths.len() {
        groups.push(start..lengths.len());
    }
    groups
}

/// Splits consecutive inputs of `lengths` tokens into `parts` non-empty
/// ranges (fewer when there are fewer inputs) whose token sums are close to
/// equal.
fn split_evenly(lengths: &[usize], parts: usize) -> Vec<Range<usize>> {
    let parts = parts.clamp(1, lengths.len().max(1));
    let total: usize = lengths.iter().sum();
    let mut ranges = Vec::with_capacity(parts);
    let (mut start, mut sum) = (0, 0);
    for (index, &length) in lengths.iter().enumerate() {
        sum += length;
        let cut = ranges.len();
        if cut + 1 == parts {
            break;
        }
        // Inputs after this one, and ranges still to start after this cut.
        let (left, needed) = (lengths.len() - index - 1, parts - cut - 1);
        if left >= needed && (sum * parts >= total * (cut + 1) || left == needed) {
            ranges.push(start..index + 1);
            start = index + 1;
        }
    }
    ranges.push(start..lengths.len());
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_evenly_balances_tokens() {
        assert_eq!(split_evenly(&[64; 8], 2), vec![0..4, 4..8]);
        assert_eq!(split_evenly(&[1; 5], 2), vec![0..3, 3..5]);
        assert_eq!(split_evenly(&[500, 10, 10, 10], 2), vec![0..1, 1..4]);
        assert_eq!(split_evenly(&[10, 10, 10, 500], 2), vec![0..3, 3..4]);
        assert_eq!(split_evenly(&[10, 10, 10, 500], 4), vec![0..1, 1..2, 2..3, 3..4]);
        assert_eq!(split_evenly(&[7, 7], 3), vec![0..1, 1..2]);
        assert_eq!(split_evenly(&[7, 7, 7], 1), vec![0..3]);
        assert_eq!(split_evenly(&[], 2), vec![0..0]);
    }

    #[test]
    fn split_evenly_covers_every_input_once() {
        let lengths: Vec<usize> = (0..23).map(|i| 3 + (i * 37) % 50).collect();
        for parts in 1..=23 {
            let ranges = split_evenly(&lengths, parts);
            assert_eq!(ranges.len(), parts, "{parts} parts");
            assert!(ranges.iter().all(|range| !range.is_empty()), "{parts} parts: {ranges:?}");
            assert!(ranges.windows(2).all(|pair| pair[0].end == pair[1].start), "{parts} parts: {ranges:?}");
            assert_eq!((ranges[0].start, ranges[parts - 1].end), (0, lengths.len()));
        }
    }

    #[test]
    fn batches_respect_the_budget() {
        assert_eq!(batches_by_tokens(&[3, 3, 3, 3], 6), vec![0..2, 2..4]);
        assert_eq!(batches_by_tokens(&[10, 2, 2], 6), vec![0..1, 1..3]);
        assert_eq!(batches_by_tokens(&[2, 10, 2], 6), vec![0..1, 1..2, 2..3]);
        assert_eq!(batches_by_tokens(&[], 6), Vec::<Range<usize>>::new());
        assert_eq!(batches_by_tokens(&[6], 6), vec![0..1]);
    }
}
