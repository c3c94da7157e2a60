//! Benchmark cases: what one timed run embeds, how to build its inputs, and
//! how many floating-point operations it costs.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use jclip::config::{ModelConfig, TextConfig, VisionConfig};
use jclip::text::TextTokenizer;
use jclip::text::tokenizer::MAX_LENGTH_LIMIT;

/// Shortest text of a `mixed:B` case, in tokens including `[CLS]` and `[SEP]`.
pub const MIXED_MIN_TOKENS: usize = 16;
/// Longest text of a `mixed:B` case: the default token limit of the reference.
pub const MIXED_MAX_TOKENS: usize = 512;
/// Most inputs of one case. The inputs are built before the first run and
/// kept, so a larger batch would only fill memory.
pub const MAX_BATCH: usize = 4096;

/// Words that the BERT uncased WordPiece vocabulary of jina-clip-v1 keeps
/// whole, one token each. Texts of a given length cycle through them; every
/// word is checked against the model's tokenizer before use.
const ONE_TOKEN_WORDS: &[&str] = &[
    "a", "photo", "of", "the", "cat", "sitting", "on", "red", "chair", "near", "window", "in", "morning", "light",
    "with", "small", "dog", "and", "green", "plant", "beside", "old", "wooden", "table",
];

/// A benchmark case: the inputs of one timed run, by kind and count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaseSpec {
    /// `batch` texts of exactly `tokens` tokens each (`text:64`, `text:64x8`).
    Text { tokens: usize, batch: usize },
    /// `batch` texts whose lengths are spread evenly from [`MIXED_MIN_TOKENS`]
    /// to [`MIXED_MAX_TOKENS`] (`mixed:32`).
    Mixed { batch: usize },
    /// `batch` images, cycling through the image files (`image`, `image:8`).
    Image { batch: usize },
}

impl CaseSpec {
    /// Returns the token count of every text of the case (empty for images).
    pub fn text_lengths(&self) -> Vec<usize> {
        match *self {
            CaseSpec::Text { tokens, batch } => vec![tokens; batch],
            CaseSpec::Mixed { batch } => mixed_lengths(batch),
            CaseSpec::Image { .. } => Vec::new(),
        }
    }

    /// Returns the number of inputs embedded by one run.
    pub fn inputs(&self) -> usize {
        match *self {
            CaseSpec::Text { batch, .. } | CaseSpec::Mixed { batch } | CaseSpec::Image { batch } => batch,
        }
    }

    /// Returns a description for tables, e.g. "8 texts × 64 tokens".
    pub fn label(&self) -> String {
        match *self {
            CaseSpec::Text { tokens, batch: 1 } => format!("text, {tokens} tokens"),
            CaseSpec::Text { tokens, batch } => format!("{batch} texts × {tokens} tokens"),
            CaseSpec::Mixed { batch } => format!("{batch} texts, {MIXED_MIN_TOKENS}–{MIXED_MAX_TOKENS} tokens"),
            CaseSpec::Image { batch: 1 } => "1 image".to_string(),
            CaseSpec::Image { batch } => format!("{batch} images"),
        }
    }
}

impl fmt::Display for CaseSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            CaseSpec::Text { tokens, batch: 1 } => write!(f, "text:{tokens}"),
            CaseSpec::Text { tokens, batch } => write!(f, "text:{tokens}x{batch}"),
            CaseSpec::Mixed { batch } => write!(f, "mixed:{batch}"),
            CaseSpec::Image { batch: 1 } => write!(f, "image"),
            CaseSpec::Image { batch } => write!(f, "image:{batch}"),
        }
    }
}

impl FromStr for CaseSpec {
    type Err = String;

    /// Parses `text:LEN`, `text:LENxBATCH`, `mixed:BATCH`, `image` or `image:BATCH`.
    fn from_str(spec: &str) -> Result<CaseSpec, String> {
        let spec = spec.trim();
        let invalid = |reason: &str| {
            format!(
                "invalid case {spec:?}: {reason}; expected text:LEN, text:LENxBATCH, mixed:BATCH, image or image:BATCH"
            )
        };
        let positive = |value: &str, what: &str| match value.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(invalid(&format!("{what} {value:?} is not a positive integer"))),
        };
        let bounded = |batch: usize| {
            if batch <= MAX_BATCH {
                Ok(batch)
            } else {
                Err(invalid(&format!("a case can have at most {MAX_BATCH} inputs, found {batch}")))
            }
        };
        let (kind, argument) = match spec.split_once(':') {
            Some((kind, argument)) => (kind, Some(argument)),
            None => (spec, None),
        };
        match (kind, argument) {
            ("text", Some(argument)) => {
                let (tokens, batch) = match argument.split_once('x') {
                    Some((tokens, batch)) => (positive(tokens, "length")?, positive(batch, "batch size")?),
                    None => (positive(argument, "length")?, 1),
                };
                if tokens < 3 {
                    return Err(invalid("a text needs at least 3 tokens: [CLS], one word and [SEP]"));
                }
                if tokens > MAX_LENGTH_LIMIT {
                    return Err(invalid(&format!("a text can have at most {MAX_LENGTH_LIMIT} tokens")));
                }
                Ok(CaseSpec::Text { tokens, batch: bounded(batch)? })
            }
            ("mixed", Some(argument)) => Ok(CaseSpec::Mixed { batch: bounded(positive(argument, "batch size")?)? }),
            ("image", None) => Ok(CaseSpec::Image { batch: 1 }),
            ("image", Some(argument)) => Ok(CaseSpec::Image { batch: bounded(positive(argument, "batch size")?)? }),
            ("text" | "mixed", None) => Err(invalid("missing the length or batch size after ':'")),
            _ => Err(invalid(&format!("unknown kind {kind:?}"))),
        }
    }
}

/// Returns `batch` lengths spread evenly from the shortest to the longest
/// mixed length, in ascending order.
pub fn mixed_lengths(batch: usize) -> Vec<usize> {
    if batch == 1 {
        return vec![MIXED_MIN_TOKENS];
    }
    let span = MIXED_MAX_TOKENS - MIXED_MIN_TOKENS;
    (0..batch).map(|i| MIXED_MIN_TOKENS + span * i / (batch - 1)).collect()
}

/// The inputs of one case, built once and reused by every run.
#[derive(Clone, Debug)]
pub enum CaseInputs {
    Texts(Vec<String>),
    Images(Vec<PathBuf>),
}

impl CaseInputs {
    pub fn len(&self) -> usize {
        match self {
            CaseInputs::Texts(texts) => texts.len(),
            CaseInputs::Images(paths) => paths.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Embeds the inputs once, L2-normalised, as `jclip embed` does.
    pub fn embed(&self, model: &jclip::Model) -> jclip::Result<Vec<jclip::Embedding>> {
        match self {
            CaseInputs::Texts(texts) => model.embed_texts(texts, true),
            CaseInputs::Images(paths) => model.embed_image_files(paths, true),
        }
    }
}

/// Builds the inputs of `case`: texts of exactly the requested token counts
/// (checked with `tokenizer`), or `batch` images cycling through `images`.
pub fn build_inputs(case: &CaseSpec, tokenizer: &TextTokenizer, images: &[PathBuf]) -> Result<CaseInputs, String> {
    match case {
        CaseSpec::Image { batch } => {
            if images.is_empty() {
                return Err("no image files for the image cases; pass --image PATH".into());
            }
            Ok(CaseInputs::Images(images.iter().cycle().take(*batch).cloned().collect()))
        }
        _ => {
            let texts = case
                .text_lengths()
                .into_iter()
                .map(|tokens| text_with_tokens(tokenizer, tokens))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(CaseInputs::Texts(texts))
        }
    }
}

/// Returns a text that `tokenizer` turns into exactly `tokens` ids, `[CLS]`
/// and `[SEP]` included, without truncation.
pub fn text_with_tokens(tokenizer: &TextTokenizer, tokens: usize) -> Result<String, String> {
    let encode = |text: &str| tokenizer.encode(0, text).map_err(|e| format!("tokenizing a benchmark text failed: {e}"));
    for word in ONE_TOKEN_WORDS {
        let ids = encode(word)?.ids;
        if ids.len() != 3 {
            return Err(format!(
                "the tokenizer splits the benchmark word {word:?} into {} ids with [CLS] and [SEP], expected 3; \
                 this tokenizer.json is not the BERT uncased vocabulary of jina-clip-v1",
                ids.len()
            ));
        }
    }
    let words: Vec<&str> = ONE_TOKEN_WORDS.iter().copied().cycle().take(tokens.saturating_sub(2)).collect();
    let text = words.join(" ");
    let encoded = encode(&text)?;
    if encoded.truncated || encoded.ids.len() != tokens {
        return Err(format!(
            "a benchmark text of {} words gave {} tokens, expected {tokens} (truncated: {})",
            words.len(),
            encoded.ids.len(),
            encoded.truncated
        ));
    }
    Ok(text)
}

/// Returns the floating-point operations of one run of `case`: the matrix
/// products of every linear layer and of attention (Q·Kᵀ and P·V), two
/// operations per multiply-add. Norms, activations, softmax and embedding
/// lookups are left out; they are a few percent of the total.
pub fn case_flops(case: &CaseSpec, config: &ModelConfig) -> Option<f64> {
    match case {
        CaseSpec::Image { batch } => config.vision.as_ref().map(|vision| *batch as f64 * image_flops(vision)),
        _ => Some(case.text_lengths().into_iter().map(|tokens| text_flops(&config.text, tokens)).sum()),
    }
}

/// Returns the operations of the text tower for one text of `tokens` tokens.
/// Texts are packed without padding, so a batch costs the sum of its texts.
pub fn text_flops(config: &TextConfig, tokens: usize) -> f64 {
    let t = tokens as f64;
    let hidden = config.hidden_size as f64;
    let inner = config.intermediate_size as f64;
    // Wqkv [3H, H], out_proj [H, H], gated_layers [2I, H], wo [H, I].
    let linear = t * hidden * (3.0 * hidden + hidden + 2.0 * inner + inner);
    // Q·Kᵀ and P·V: T×T×head_dim multiply-adds each, for every head.
    let attention = 2.0 * t * t * hidden;
    2.0 * config.num_layers as f64 * (linear + attention)
}

/// Returns the operations of the image tower for one image.
pub fn image_flops(config: &VisionConfig) -> f64 {
    let tokens = config.tokens_per_image() as f64;
    let patches = (config.grid_size() * config.grid_size()) as f64;
    let width = config.width as f64;
    let mlp = config.mlp_hidden as f64;
    // The patch embedding: a stride-P convolution over 3·P·P inputs per patch.
    let patch_inputs = (3 * config.patch_size * config.patch_size) as f64;
    let patch_embed = patches * patch_inputs * width;
    // q, k, v [3W, W], proj [W, W], w1 and w2 [F, W], w3 [W, F].
    let linear = tokens * width * (3.0 * width + width + 2.0 * mlp + mlp);
    let attention = 2.0 * tokens * tokens * width;
    2.0 * (patch_embed + config.num_layers as f64 * (linear + attention))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_print() {
        for (text, spec) in [
            ("text:64", CaseSpec::Text { tokens: 64, batch: 1 }),
            ("text:64x8", CaseSpec::Text { tokens: 64, batch: 8 }),
            ("mixed:32", CaseSpec::Mixed { batch: 32 }),
            ("image", CaseSpec::Image { batch: 1 }),
            ("image:8", CaseSpec::Image { batch: 8 }),
        ] {
            assert_eq!(text.parse::<CaseSpec>().unwrap(), spec, "{text}");
            assert_eq!(spec.to_string(), text);
        }
    }

    #[test]
    fn specs_reject_bad_values() {
        for text in ["text", "text:0", "text:2", "text:64x0", "text:64x", "mixed:", "image:0", "audio:3", "text:abc"] {
            assert!(text.parse::<CaseSpec>().is_err(), "{text} parsed");
        }
    }

    #[test]
    fn specs_reject_sizes_over_limits() {
        let longest = format!("text:{MAX_LENGTH_LIMIT}");
        assert_eq!(longest.parse::<CaseSpec>().unwrap(), CaseSpec::Text { tokens: MAX_LENGTH_LIMIT, batch: 1 });
        let error = format!("text:{}", MAX_LENGTH_LIMIT + 1).parse::<CaseSpec>().unwrap_err();
        assert!(error.contains(&format!("at most {MAX_LENGTH_LIMIT} tokens")), "{error}");
        for text in [
            format!("image:{}", MAX_BATCH + 1),
            format!("mixed:{}", MAX_BATCH + 1),
            format!("text:16x{}", MAX_BATCH + 1),
        ] {
            let error = text.parse::<CaseSpec>().unwrap_err();
            assert!(error.contains(&format!("at most {MAX_BATCH} inputs")), "{text}: {error}");
        }
        assert_eq!(format!("image:{MAX_BATCH}").parse::<CaseSpec>().unwrap(), CaseSpec::Image { batch: MAX_BATCH });
    }

    #[test]
    fn mixed_lengths_span_the_range() {
        let lengths = mixed_lengths(32);
        assert_eq!(lengths.len(), 32);
        assert_eq!(lengths[0], MIXED_MIN_TOKENS);
        assert_eq!(lengths[31], MIXED_MAX_TOKENS);
        assert!(lengths.windows(2).all(|pair| pair[0] <= pair[1]));
        assert_eq!(mixed_lengths(1), vec![MIXED_MIN_TOKENS]);
    }

    #[test]
    fn flops_of_the_full_shape() {
        let text = TextConfig::jina_bert_v2_base();
        // 12 layers × (64·768·(3·768 + 768 + 3·3072) + 2·64²·768) multiply-adds.
        let expected = 2.0 * 12.0 * (64.0 * 768.0 * 12288.0 + 2.0 * 64.0 * 64.0 * 768.0);
        assert_eq!(text_flops(&text, 64), expected);
        // Attention grows with the square of the length, the linear layers linearly.
        let ratio = text_flops(&text, 8192) / text_flops(&text, 4096);
        assert!(ratio > 2.0, "ratio {ratio}");
        assert!(ratio < 4.0, "ratio {ratio}");

        let vision = VisionConfig {
            image_size: 224,
            patch_size: 16,
            width: 768,
            num_layers: 12,
            head_width: 64,
            mlp_hidden: 2048,
            qkv_bias: true,
            rope: true,
            rope_pretrained_grid: 16,
            rope_interpolate: true,
            layer_norm_eps: 1e-6,
        };
        let patch = 196.0 * 768.0 * 768.0;
        let blocks = 12.0 * (197.0 * 768.0 * (4.0 * 768.0 + 3.0 * 2048.0) + 2.0 * 197.0 * 197.0 * 768.0);
        assert_eq!(image_flops(&vision), 2.0 * (patch + blocks));
    }
}
