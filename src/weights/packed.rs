//! The packed checkpoint format written by `jclip convert`.
//!
//! A packed checkpoint is an ordinary `model.safetensors` file, so any
//! safetensors reader can list it. Besides the tensors of the original
//! checkpoint that the engine reads as floats (biases, norms, embeddings),
//! it contains every linear layer's weights already in the kernels' panel
//! layout, as `U8` tensors named `jclip.packed/<key>`. Each of those starts
//! at a multiple of [`PACKED_ALIGN`] bytes in the file, and the file is
//! mapped at a page boundary, so the kernels read them in place.
//!
//! The `__metadata__` map describes the layout:
//!
//! | key | value |
//! |---|---|
//! | `jclip.format` | `packed` |
//! | `jclip.format_version` | [`FORMAT_VERSION`] |
//! | `jclip.precision` | the precision the file was converted to |
//! | `jclip.panel_width` | output features per panel ([`NR`]) |
//! | `jclip.alignment` | alignment of every packed tensor, in bytes |
//! | `jclip.quantization` | how int8 weights were quantised, or `none` |
//! | `jclip.block_size` | input features per quantisation scale, or `none` |
//! | `jclip.matrices` | JSON: key → `{tensor, format, n, k}` |
//! | `jclip.sources` | JSON: name → `{dtype, shape}` of every original tensor folded into a packed matrix |
//!
//! The source list lets the loader resolve and shape-check the original
//! names exactly as for a Hugging Face checkpoint; their values are then
//! taken from the packed matrices.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use jclip_kernels::matmul::NR;
use jclip_kernels::{PACKED_ALIGN, PackedMatrix, WeightFormat};
use safetensors::Dtype;
use serde::{Deserialize, Serialize};

use super::{TensorEntry, TensorRef};
use crate::error::{Error, Result};
use crate::precision::Precision;

/// Version of the packed layout. The loader rejects files of another version.
pub const FORMAT_VERSION: u32 = 1;
/// Prefix of the packed tensors' names.
pub const PACKED_PREFIX: &str = "jclip.packed/";

const KEY_FORMAT: &str = "jclip.format";
const KEY_VERSION: &str = "jclip.format_version";
const KEY_PRECISION: &str = "jclip.precision";
const KEY_PANEL_WIDTH: &str = "jclip.panel_width";
const KEY_ALIGNMENT: &str = "jclip.alignment";
const KEY_QUANTIZATION: &str = "jclip.quantization";
const KEY_BLOCK_SIZE: &str = "jclip.block_size";
const KEY_MATRICES: &str = "jclip.matrices";
const KEY_SOURCES: &str = "jclip.sources";

/// One packed matrix of a packed checkpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PackedInfo {
    /// Name of the `U8` tensor that contains the bytes.
    pub tensor: String,
    #[serde(with = "format_name")]
    pub format: WeightFormat,
    pub n: usize,
    pub k: usize,
}

/// Name, dtype and shape of an original tensor folded into a packed matrix.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SourceInfo {
    pub dtype: String,
    pub shape: Vec<usize>,
}

/// The layout of a packed checkpoint, read from its metadata.
#[derive(Clone, Debug)]
pub struct PackedLayout {
    pub precision: Precision,
    pub matrices: HashMap<String, PackedInfo>,
    sources: BTreeMap<String, SourceInfo>,
}

/// Returns the weight format called `name`.
pub fn format_from_name(name: &str) -> Option<WeightFormat> {
    [WeightFormat::F32, WeightFormat::F16, WeightFormat::BF16, WeightFormat::Int8]
        .into_iter()
        .find(|format| format.name() == name)
}

mod format_name {
    use jclip_kernels::WeightFormat;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(format: &WeightFormat, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(format.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<WeightFormat, D::Error> {
        let name = String::deserialize(deserializer)?;
        super::format_from_name(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown weight format {name:?}")))
    }
}

impl PackedLayout {
    /// Reads the layout from a file's metadata; `None` for a file that is not packed.
    pub(super) fn from_metadata(metadata: &HashMap<String, String>, path: &Path) -> Result<Option<PackedLayout>> {
        let Some(format) = metadata.get(KEY_FORMAT) else {
            return Ok(None);
        };
        let invalid = |message: String| Error::InvalidCheckpoint { path: path.to_path_buf(), message };
        let again = "convert the original checkpoint again with this version of jclip";
        if format != "packed" {
            return Err(invalid(format!("unknown {KEY_FORMAT} {format:?}; {again}")));
        }
        let get = |key: &str| metadata.get(key).ok_or_else(|| invalid(format!("packed file without {key}; {again}")));
        let version = get(KEY_VERSION)?;
        if version.parse::<u32>().ok() != Some(FORMAT_VERSION) {
            return Err(invalid(format!(
                "packed format version {version}, this jclip reads version {FORMAT_VERSION}; {again}"
            )));
        }
        let panel_width = get(KEY_PANEL_WIDTH)?;
        if panel_width.parse::<usize>().ok() != Some(NR) {
            return Err(invalid(format!(
                "packed with panels of {panel_width} features, this jclip uses {NR}; {again}"
            )));
        }
        let precision = get(KEY_PRECISION)?;
        let precision = Precision::from_name(precision)
            .ok_or_else(|| invalid(format!("unknown {KEY_PRECISION} {precision:?}; {again}")))?;
        let matrices: HashMap<String, PackedInfo> = serde_json::from_str(get(KEY_MATRICES)?)
            .map_err(|e| invalid(format!("{KEY_MATRICES} is not valid: {e}; {again}")))?;
        let sources: BTreeMap<String, SourceInfo> = serde_json::from_str(get(KEY_SOURCES)?)
            .map_err(|e| invalid(format!("{KEY_SOURCES} is not valid: {e}; {again}")))?;
        Ok(Some(PackedLayout { precision, matrices, sources }))
    }

    /// Adds the original tensors folded into packed matrices, as names
    /// without values, so that name resolution and shape checks see them.
    pub(super) fn add_source_tensors(&self, tensors: &mut HashMap<String, TensorEntry>, path: &Path) -> Result<()> {
        for (name, source) in &self.sources {
            let dtype = parse_dtype(&source.dtype).ok_or_else(|| Error::InvalidCheckpoint {
                path: path.to_path_buf(),
                message: format!("{KEY_SOURCES} gives tensor {name} the unknown dtype {:?}", source.dtype),
            })?;
            let entry = TensorEntry { file: 0, dtype, shape: source.shape.clone(), start: 0, end: 0, packed: true };
            if tensors.insert(name.clone(), entry).is_some() {
                return Err(Error::InvalidCheckpoint {
                    path: path.to_path_buf(),
                    message: format!("tensor {name} is stored both packed and as values"),
                });
            }
        }
        Ok(())
    }
}

fn parse_dtype(name: &str) -> Option<Dtype> {
    match name {
        "F32" => Some(Dtype::F32),
        "F16" => Some(Dtype::F16),
        "BF16" => Some(Dtype::BF16),
        _ => None,
    }
}

fn dtype_name(dtype: Dtype) -> String {
    format!("{dtype:?}")
}

/// Builds the packed checkpoint of one conversion.
pub struct PackedWriter<'a> {
    precision: Precision,
    /// Original tensors copied unchanged.
    copies: Vec<TensorRef<'a>>,
    /// Key, tensor name and matrix of every packed matrix.
    packed: Vec<(String, &'a PackedMatrix)>,
    sources: BTreeMap<String, SourceInfo>,
    /// Text stored as `jclip.quantization` and `jclip.block_size`.
    quantization: String,
    block_size: String,
}

impl<'a> PackedWriter<'a> {
    pub fn new(precision: Precision, quantization: String, block_size: String) -> PackedWriter<'a> {
        PackedWriter {
            precision,
            copies: Vec::new(),
            packed: Vec::new(),
            sources: BTreeMap::new(),
            quantization,
            block_size,
        }
    }

    /// Copies an original tensor unchanged.
    pub fn copy(&mut self, tensor: TensorRef<'a>) {
        self.copies.push(tensor);
    }

    /// Stores a packed matrix under `key`, built from the original tensors `sources`.
    pub fn packed(&mut self, key: String, matrix: &'a PackedMatrix, sources: &[TensorRef<'_>]) {
        for source in sources {
            let info = SourceInfo { dtype: dtype_name(source.dtype), shape: source.shape.to_vec() };
            self.sources.insert(source.name.to_string(), info);
        }
        self.packed.push((key, matrix));
    }

    /// Writes `path` through a temporary file in the same directory, so a
    /// failed write never leaves a partial `model.safetensors` behind.
    pub fn write(&self, path: &Path) -> Result<u64> {
        let partial = partial_path(path);
        let result = self.write_to(&partial).and_then(|bytes| {
            std::fs::rename(&partial, path).map_err(|source| Error::write(path, source))?;
            Ok(bytes)
        });
        if result.is_err() {
            let _ = std::fs::remove_file(&partial);
        }
        result
    }

    fn write_to(&self, path: &Path) -> Result<u64> {
        let mut header = serde_json::Map::new();
        let mut matrices = BTreeMap::new();
        // Packed tensors first, each at a multiple of PACKED_ALIGN, with
        // padding tensors in between because safetensors requires the data
        // of consecutive tensors to touch.
        let mut chunks: Vec<&[u8]> = Vec::new();
        let mut offset = 0usize;
        let mut pads = 0usize;
        static ZEROS: [u8; PACKED_ALIGN] = [0; PACKED_ALIGN];
        let mut entry = |name: String, dtype: &str, shape: Vec<usize>, bytes: &'a [u8], offset: &mut usize| {
            let value =
                serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [*offset, *offset + bytes.len()]});
            header.insert(name, value);
            *offset += bytes.len();
            bytes
        };
        for (key, matrix) in &self.packed {
            let misalignment = offset % PACKED_ALIGN;
            if misalignment != 0 {
                let pad = &ZEROS[..PACKED_ALIGN - misalignment];
                chunks.push(entry(format!("jclip.pad/{pads}"), "U8", vec![pad.len()], pad, &mut offset));
                pads += 1;
            }
            let tensor = format!("{PACKED_PREFIX}{key}");
            let bytes = matrix.as_bytes();
            chunks.push(entry(tensor.clone(), "U8", vec![bytes.len()], bytes, &mut offset));
            let info = PackedInfo { tensor, format: matrix.format(), n: matrix.n(), k: matrix.k() };
            matrices.insert(key.clone(), info);
        }
        for tensor in &self.copies {
            chunks.push(entry(
                tensor.name.to_string(),
                &dtype_name(tensor.dtype),
                tensor.shape.to_vec(),
                tensor.bytes,
                &mut offset,
            ));
        }
        let metadata = serde_json::json!({
            "format": "pt",
            KEY_FORMAT: "packed",
            KEY_VERSION: FORMAT_VERSION.to_string(),
            KEY_PRECISION: self.precision.name(),
            KEY_PANEL_WIDTH: NR.to_string(),
            KEY_ALIGNMENT: PACKED_ALIGN.to_string(),
            KEY_QUANTIZATION: self.quantization,
            KEY_BLOCK_SIZE: self.block_size,
            KEY_MATRICES: serde_json::to_string(&matrices).map_err(|e| json_error(path, e))?,
            KEY_SOURCES: serde_json::to_string(&self.sources).map_err(|e| json_error(path, e))?,
        });
        header.insert("__metadata__".into(), metadata);
        let mut header = serde_json::to_vec(&header).map_err(|e| json_error(path, e))?;
        // Spaces after the JSON are allowed; they put the data at a multiple of PACKED_ALIGN.
        let data_start = (8 + header.len()).next_multiple_of(PACKED_ALIGN);
        header.resize(data_start - 8, b' ');

        let file = std::fs::File::create(path).map_err(|source| Error::write(path, source))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let io = |source| Error::write(path, source);
        out.write_all(&(header.len() as u64).to_le_bytes()).map_err(io)?;
        out.write_all(&header).map_err(io)?;
        for chunk in chunks {
            out.write_all(chunk).map_err(io)?;
        }
        let file = out.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        Ok((data_start + offset) as u64)
    }
}

fn json_error(path: &Path, error: serde_json::Error) -> Error {
    Error::write(path, std::io::Error::other(error))
}

fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".partial");
    path.with_file_name(name)
}
