//! `preprocessor_config.json`: the crop size and the normalisation constants.

use std::path::Path;

use serde_json::{Map, Value};

use super::ImageError;

/// Mean of the OpenAI CLIP training images per RGB channel, on the 0..1 scale
/// (`OPENAI_CLIP_MEAN` in transformers).
pub const OPENAI_CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];

/// Standard deviation of the OpenAI CLIP training images per RGB channel
/// (`OPENAI_CLIP_STD` in transformers).
// The digits are those published in transformers; Python rounds them to float32 the same way.
#[allow(clippy::excessive_precision)]
pub const OPENAI_CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_58, 0.275_777_11];

/// Crop size of jina-clip-v1 in pixels.
pub const DEFAULT_IMAGE_SIZE: u32 = 224;

/// Largest `size` a config may set. It guards against typos: one crop of this size is
/// 768 MiB as RGB8 and 3 GiB as float32.
pub const MAX_IMAGE_SIZE: u32 = 16_384;

/// Description of in-memory JSON in error messages.
const JSON_INPUT: &str = "config JSON";

/// The parameters of the image transform: resize the shortest side to `size` with bicubic
/// filtering, crop the centre `size` x `size`, then normalise each channel.
#[derive(Clone, Debug, PartialEq)]
pub struct PreprocessConfig {
    /// Side of the square crop in pixels, and the length of the shortest side after the resize.
    pub size: u32,
    /// Per-channel mean (R, G, B) subtracted from values on the 0..1 scale.
    pub mean: [f32; 3],
    /// Per-channel standard deviation (R, G, B) that the centred values are divided by.
    pub std: [f32; 3],
}

impl Default for PreprocessConfig {
    fn default() -> Self {
        Self { size: DEFAULT_IMAGE_SIZE, mean: OPENAI_CLIP_MEAN, std: OPENAI_CLIP_STD }
    }
}

impl PreprocessConfig {
    /// Parses a `preprocessor_config.json` document.
    ///
    /// Accepts the keys of `JinaCLIPImageProcessor` (`size`, `mean`, `std`, `resize_mode`,
    /// `interpolation`, `fill_color`) and Hugging Face's names `image_mean` and `image_std`.
    /// `size` is an integer, `{"shortest_edge": N}`, or `{"height": N, "width": N}`. A missing
    /// or null key takes the jina-clip-v1 default. Keys that would select a transform the
    /// engine does not implement (a resize mode other than `shortest`, an interpolation other
    /// than `bicubic`, a crop size different from `size`, a disabled resize, crop, rescale or
    /// normalisation) are rejected with [`ImageError::UnsupportedConfig`]. Other keys are
    /// ignored.
    pub fn from_json_str(s: &str) -> Result<Self, ImageError> {
        parse_config(s, JSON_INPUT)
    }

    /// Reads and parses a `preprocessor_config.json` file; see [`Self::from_json_str`].
    pub fn from_file(path: &Path) -> Result<Self, ImageError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ImageError::Io { path: path.to_path_buf(), source })?;
        parse_config(&text, &path.display().to_string())
    }
}

fn parse_config(text: &str, input: &str) -> Result<PreprocessConfig, ImageError> {
    let invalid = |message: String| ImageError::InvalidConfig { input: input.to_string(), message };
    let root: Value = serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
    let Value::Object(map) = root else {
        return Err(invalid("the top level is not a JSON object".to_string()));
    };

    let mut config = PreprocessConfig::default();
    if let Some(size) = parse_size(&map, input)? {
        config.size = size;
    }
    if let Some(mean) = parse_channels(&map, &["mean", "image_mean"], input)? {
        config.mean = mean;
    }
    if let Some(std) = parse_channels(&map, &["std", "image_std"], input)? {
        if let Some(c) = std.iter().position(|&s| s == 0.0) {
            return Err(invalid(format!("std[{c}] is 0 in float32, so normalisation would divide by zero")));
        }
        config.std = std;
    }
    check_supported(&map, input, config.size)?;
    Ok(config)
}

/// Reads `size`; `None` when it is missing or null.
fn parse_size(map: &Map<String, Value>, input: &str) -> Result<Option<u32>, ImageError> {
    let Some(value) = map.get("size").filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let side = match value {
        Value::Number(_) => size_number(value, "size", input)?,
        Value::Object(fields) => {
            if let Some(edge) = fields.get("shortest_edge") {
                size_number(edge, "size.shortest_edge", input)?
            } else {
                let (Some(height), Some(width)) = (fields.get("height"), fields.get("width")) else {
                    return Err(ImageError::InvalidConfig {
                        input: input.to_string(),
                        message: format!(
                            "size = {value} has neither \"shortest_edge\" nor both \
                             \"height\" and \"width\""
                        ),
                    });
                };
                let height = size_number(height, "size.height", input)?;
                let width = size_number(width, "size.width", input)?;
                if height != width {
                    return Err(unsupported(input, "size", value, "a square crop (height equal to width)"));
                }
                height
            }
        }
        _ => {
            return Err(ImageError::InvalidConfig {
                input: input.to_string(),
                message: format!("size = {value} is neither an integer nor an object"),
            });
        }
    };
    Ok(Some(side))
}

/// Reads a side length in `1..=MAX_IMAGE_SIZE`.
fn size_number(value: &Value, key: &str, input: &str) -> Result<u32, ImageError> {
    match value.as_u64() {
        Some(n) if (1..=u64::from(MAX_IMAGE_SIZE)).contains(&n) => Ok(n as u32),
        _ => Err(ImageError::InvalidConfig {
            input: input.to_string(),
            message: format!("{key} = {value} is not an integer from 1 to {MAX_IMAGE_SIZE}"),
        }),
    }
}

/// Reads three per-channel numbers from the first present, non-null key of `keys`.
fn parse_channels(map: &Map<String, Value>, keys: &[&str], input: &str) -> Result<Option<[f32; 3]>, ImageError> {
    let Some((key, value)) = keys.iter().find_map(|k| map.get(*k).filter(|v| !v.is_null()).map(|v| (*k, v))) else {
        return Ok(None);
    };
    let numbers: Option<Vec<f64>> =
        value.as_array().map(|items| items.iter().map(Value::as_f64).collect()).unwrap_or(None);
    match numbers.as_deref() {
        // torchvision converts the Python floats to a float32 tensor, so round here the same way.
        Some(&[r, g, b]) if [r, g, b].iter().all(|x| x.is_finite()) => Ok(Some([r as f32, g as f32, b as f32])),
        _ => Err(ImageError::InvalidConfig {
            input: input.to_string(),
            message: format!("{key} = {value} is not a list of 3 finite numbers"),
        }),
    }
}

/// Rejects keys whose values select a transform other than the one implemented here.
fn check_supported(map: &Map<String, Value>, input: &str, size: u32) -> Result<(), ImageError> {
    let present = |key: &str| map.get(key).filter(|v| !v.is_null());

    if let Some(mode) = present("resize_mode")
        && mode.as_str() != Some("shortest")
    {
        return Err(unsupported(input, "resize_mode", mode, "\"shortest\""));
    }
    if let Some(interpolation) = present("interpolation")
        && interpolation.as_str() != Some("bicubic")
    {
        return Err(unsupported(input, "interpolation", interpolation, "\"bicubic\""));
    }
    // Hugging Face image processors name the filter by its Pillow number; 3 is BICUBIC.
    if let Some(resample) = present("resample")
        && resample.as_u64() != Some(3)
    {
        return Err(unsupported(input, "resample", resample, "3 (bicubic)"));
    }
    for key in ["do_resize", "do_center_crop", "do_rescale", "do_normalize"] {
        if let Some(flag) = present(key)
            && flag.as_bool() != Some(true)
        {
            return Err(unsupported(input, key, flag, "true"));
        }
    }
    if let Some(factor) = present("rescale_factor")
        && factor.as_f64().map(|f| f as f32) != Some(1.0 / 255.0)
    {
        return Err(unsupported(input, "rescale_factor", factor, "1/255"));
    }
    if let Some(crop) = present("crop_size") {
        let crop_side = match crop {
            Value::Number(n) => n.as_u64(),
            Value::Object(fields) => {
                let height = fields.get("height").and_then(Value::as_u64);
                let width = fields.get("width").and_then(Value::as_u64);
                if height == width { height } else { None }
            }
            _ => None,
        };
        if crop_side != Some(u64::from(size)) {
            return Err(unsupported(input, "crop_size", crop, "a crop equal to size"));
        }
    }
    Ok(())
}

fn unsupported(input: &str, key: &'static str, value: &Value, supported: &'static str) -> ImageError {
    ImageError::UnsupportedConfig { input: input.to_string(), key, value: value.to_string(), supported }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jina_config_parses() {
        let json = r#"{"image_processor_type": "JinaCLIPImageProcessor", "size": 224,
            "mean": [0.48145466, 0.4578275, 0.40821073],
            "std": [0.26862954, 0.26130258, 0.27577711],
            "resize_mode": "shortest", "interpolation": "bicubic", "fill_color": 0}"#;
        let config = PreprocessConfig::from_json_str(json).unwrap();
        assert_eq!(config, PreprocessConfig::default());
    }

    #[test]
    fn size_forms() {
        let cases = [
            (r#"{"size": 196}"#, 196),
            (r#"{"size": {"shortest_edge": 64}}"#, 64),
            (r#"{"size": {"height": 32, "width": 32}}"#, 32),
            (r#"{"size": null}"#, DEFAULT_IMAGE_SIZE),
            ("{}", DEFAULT_IMAGE_SIZE),
        ];
        for (json, size) in cases {
            let config = PreprocessConfig::from_json_str(json).unwrap();
            assert_eq!(config.size, size, "{json}");
        }
    }

    #[test]
    fn hf_mean_std_and_nulls() {
        let json = r#"{"image_mean": [0.5, 0.5, 0.5], "image_std": [0.25, 0.5, 1.0]}"#;
        let config = PreprocessConfig::from_json_str(json).unwrap();
        assert_eq!(config.mean, [0.5; 3]);
        assert_eq!(config.std, [0.25, 0.5, 1.0]);

        let config = PreprocessConfig::from_json_str(r#"{"mean": null, "std": null}"#).unwrap();
        assert_eq!(config.mean, OPENAI_CLIP_MEAN);
        assert_eq!(config.std, OPENAI_CLIP_STD);
    }

    #[test]
    fn unsupported_values_name_key() {
        let cases = [
            (r#"{"resize_mode": "squash"}"#, "resize_mode"),
            (r#"{"interpolation": "bilinear"}"#, "interpolation"),
            (r#"{"size": {"height": 224, "width": 256}}"#, "size"),
            (r#"{"resample": 2}"#, "resample"),
            (r#"{"do_normalize": false}"#, "do_normalize"),
            (r#"{"crop_size": 200}"#, "crop_size"),
            (r#"{"rescale_factor": 1.0}"#, "rescale_factor"),
        ];
        for (json, key) in cases {
            let err = PreprocessConfig::from_json_str(json).unwrap_err();
            assert!(matches!(&err, ImageError::UnsupportedConfig { key: k, .. } if *k == key), "{json}: {err:?}");
            let message = err.to_string();
            assert!(message.contains(key), "{message}");
            assert!(message.contains("config JSON"), "{message}");
        }
    }

    #[test]
    fn invalid_values_rejected() {
        let cases = [
            "[1, 2]",
            "not json",
            r#"{"size": 0}"#,
            r#"{"size": -3}"#,
            r#"{"size": 2.5}"#,
            r#"{"size": "224"}"#,
            r#"{"size": {"width": 224}}"#,
            r#"{"mean": [0.5, 0.5]}"#,
            r#"{"std": [0.5, 0.0, 0.5]}"#,
            r#"{"image_std": "x"}"#,
        ];
        for json in cases {
            let err = PreprocessConfig::from_json_str(json).unwrap_err();
            assert!(matches!(err, ImageError::InvalidConfig { .. }), "{json}: {err:?}");
        }
    }
}
