//! Memory-mapped safetensors checkpoints, single-file or sharded.
//!
//! The files stay mapped for the life of the model: large tables such as the
//! word embeddings are read in place, row by row, and never copied whole.

pub mod names;
pub mod packed;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jclip_kernels::{PackedMatrix, SharedBytes};
use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};

use self::packed::PackedLayout;

use crate::error::{Error, Result};

/// File name of a single-file checkpoint.
pub const SINGLE_FILE: &str = "model.safetensors";
/// File name of the index of a sharded checkpoint.
pub const SHARD_INDEX: &str = "model.safetensors.index.json";

/// Element type of a stored tensor that the engine reads as floats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoredDtype {
    F32,
    F16,
    BF16,
}

impl StoredDtype {
    pub fn size(self) -> usize {
        match self {
            StoredDtype::F32 => 4,
            StoredDtype::F16 | StoredDtype::BF16 => 2,
        }
    }

    /// Converts little-endian stored values to f32.
    fn convert(self, bytes: &[u8], out: &mut [f32]) {
        match self {
            StoredDtype::F32 => jclip_kernels::convert::f32_bytes_to_f32(bytes, out),
            StoredDtype::F16 => jclip_kernels::convert::f16_bytes_to_f32(bytes, out),
            StoredDtype::BF16 => jclip_kernels::convert::bf16_bytes_to_f32(bytes, out),
        }
    }
}

struct MappedFile {
    path: PathBuf,
    /// Shared with the packed matrices that borrow their bytes from the file.
    map: Arc<Mmap>,
}

#[derive(Clone, Debug)]
struct TensorEntry {
    file: usize,
    dtype: Dtype,
    shape: Vec<usize>,
    /// Byte range inside the mapped file.
    start: usize,
    end: usize,
    /// The tensor was consumed by `jclip convert`: its values live in a
    /// packed matrix, and only its name, dtype and shape remain.
    packed: bool,
}

/// An opened checkpoint: every tensor of every shard, by name.
pub struct Checkpoint {
    files: Vec<MappedFile>,
    tensors: HashMap<String, TensorEntry>,
    /// `__metadata__` of the first file.
    metadata: HashMap<String, String>,
    /// Present when the file was written by `jclip convert`.
    packed: Option<PackedLayout>,
}

/// A borrowed view of one stored tensor.
#[derive(Clone, Copy)]
pub struct TensorRef<'a> {
    pub name: &'a str,
    pub dtype: Dtype,
    pub shape: &'a [usize],
    pub bytes: &'a [u8],
    path: &'a Path,
    /// Stored packed by `jclip convert`; `bytes` is empty.
    packed: bool,
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let paths: Vec<&Path> = self.files.iter().map(|file| file.path.as_path()).collect();
        f.debug_struct("Checkpoint").field("files", &paths).field("tensors", &self.tensors.len()).finish()
    }
}

impl Checkpoint {
    /// Opens `model.safetensors`, or the shards listed by
    /// `model.safetensors.index.json`, in `dir`.
    pub fn open_dir(dir: &Path) -> Result<Checkpoint> {
        let single = dir.join(SINGLE_FILE);
        let index = dir.join(SHARD_INDEX);
        if single.is_file() {
            Checkpoint::open_files(&[single])
        } else if index.is_file() {
            let shards = shard_files(&index)?;
            if let Some(missing) = shards.iter().find(|shard| !shard.is_file()) {
                return Err(Error::MissingFile {
                    path: missing.clone(),
                    hint: format!("{SHARD_INDEX} lists it; download every shard that the index names"),
                });
            }
            Checkpoint::open_files(&shards)
        } else {
            Err(Error::MissingFile {
                path: single,
                hint: format!("the model directory needs {SINGLE_FILE} or a sharded {SHARD_INDEX}"),
            })
        }
    }

    /// Opens and validates the given safetensors files.
    pub fn open_files(paths: &[PathBuf]) -> Result<Checkpoint> {
        let mut files = Vec::with_capacity(paths.len());
        let mut tensors = HashMap::new();
        let mut metadata = HashMap::new();
        for (file_index, path) in paths.iter().enumerate() {
            let file = File::open(path).map_err(|source| Error::io(path, source))?;
            // SAFETY: the mapping is read-only. Like every memory-mapped reader,
            // this assumes no other process truncates or rewrites the file while
            // the model is open. README lists that as a limit of the library.
            let map = Arc::new(unsafe { Mmap::map(&file) }.map_err(|source| Error::io(path, source))?);
            let (header_len, header) = SafeTensors::read_metadata(&map).map_err(|e| Error::InvalidCheckpoint {
                path: path.clone(),
                message: format!("{e}; the file may be truncated or not a safetensors file, download it again"),
            })?;
            let data_start = 8 + header_len;
            if file_index == 0
                && let Some(found) = header.metadata()
            {
                metadata = found.clone();
            }
            for (name, info) in header.tensors() {
                let entry = TensorEntry {
                    file: file_index,
                    dtype: info.dtype,
                    shape: info.shape.clone(),
                    start: data_start + info.data_offsets.0,
                    end: data_start + info.data_offsets.1,
                    packed: false,
                };
                if tensors.insert(name.clone(), entry).is_some() {
                    return Err(Error::InvalidCheckpoint {
                        path: path.clone(),
                        message: format!("tensor {name} appears in more than one shard"),
                    });
                }
            }
            files.push(MappedFile { path: path.clone(), map });
        }
        let packed = PackedLayout::from_metadata(&metadata, &paths[0])?;
        if let Some(layout) = &packed {
            layout.add_source_tensors(&mut tensors, &paths[0])?;
        }
        Ok(Checkpoint { files, tensors, metadata, packed })
    }

    /// Returns the tensor called `name`, if present.
    pub fn get(&self, name: &str) -> Option<TensorRef<'_>> {
        let (name, entry) = self.tensors.get_key_value(name)?;
        let file = &self.files[entry.file];
        Some(TensorRef {
            name,
            dtype: entry.dtype,
            shape: &entry.shape,
            bytes: &file.map[entry.start..entry.end],
            path: &file.path,
            packed: entry.packed,
        })
    }

    /// Returns the packed layout of a checkpoint written by `jclip convert`.
    pub fn packed_layout(&self) -> Option<&PackedLayout> {
        self.packed.as_ref()
    }

    /// Returns the packed matrix stored under `key`, borrowing its bytes from
    /// the mapped file, after checking its shape against `n × k`.
    pub fn packed_matrix(&self, key: &str, n: usize, k: usize) -> Result<PackedMatrix> {
        let path = self.path().to_path_buf();
        let invalid = |message: String| Error::InvalidCheckpoint { path: path.clone(), message };
        let layout =
            self.packed.as_ref().ok_or_else(|| invalid(format!("no packed matrix {key}: the file is not packed")))?;
        let info = layout.matrices.get(key).ok_or_else(|| {
            invalid(format!("the packed file lacks the matrix {key}; convert the original checkpoint again"))
        })?;
        if (info.n, info.k) != (n, k) {
            return Err(invalid(format!(
                "packed matrix {key} is {}×{}, the configuration needs {n}×{k}; convert the original checkpoint again",
                info.n, info.k
            )));
        }
        let entry = self.tensors.get(&info.tensor).filter(|entry| !entry.packed).ok_or_else(|| {
            invalid(format!("the packed file lacks the tensor {}; convert the original checkpoint again", info.tensor))
        })?;
        let file = &self.files[entry.file];
        let source: SharedBytes = file.map.clone();
        let needed = info.format.packed_bytes(n, k);
        if entry.end - entry.start != needed {
            return Err(invalid(format!(
                "packed tensor {} holds {} bytes, its {} {n}×{k} matrix needs {needed}",
                info.tensor,
                entry.end - entry.start,
                info.format
            )));
        }
        PackedMatrix::from_shared(source, entry.start, info.format, n, k).map_err(|e| invalid(e.to_string()))
    }

    /// Reports whether a tensor called `name` exists.
    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// Names of all tensors, in no particular order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// Returns the `__metadata__` map of the first file.
    pub fn metadata(&self) -> &HashMap<String, String> {
        &self.metadata
    }

    /// Path of the first file, for error messages.
    pub fn path(&self) -> &Path {
        &self.files[0].path
    }
}

/// Reads the shard file names of a sharded checkpoint index.
fn shard_files(index: &Path) -> Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string(index).map_err(|source| Error::io(index, source))?;
    let invalid = |message: String| Error::InvalidConfig { path: index.to_path_buf(), message };
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| invalid(format!("not valid JSON: {e}")))?;
    let weight_map = match value.get("weight_map") {
        None => return Err(invalid("missing the weight_map object".into())),
        Some(map) => map.as_object().ok_or_else(|| {
            invalid(format!("weight_map must be an object of tensor names to shard files, found {map}"))
        })?,
    };
    let dir = index.parent().unwrap_or(Path::new("."));
    let mut shards: Vec<String> = Vec::new();
    for (name, file) in weight_map {
        let file = file.as_str().ok_or_else(|| invalid(format!("weight_map entry {name} is not a file name")))?;
        if file.contains('/') || file.contains('\\') || file == ".." {
            return Err(invalid(format!("shard name {file:?} must be a file in the model directory")));
        }
        if !shards.iter().any(|known| known == file) {
            shards.push(file.to_string());
        }
    }
    shards.sort();
    if shards.is_empty() {
        return Err(invalid("weight_map lists no shards".into()));
    }
    Ok(shards.into_iter().map(|file| dir.join(file)).collect())
}

impl<'a> TensorRef<'a> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reports whether the values are stored in a packed matrix (see [`Checkpoint::packed_matrix`]).
    pub fn is_packed(&self) -> bool {
        self.packed
    }

    /// The element type, if it is one the engine reads as floats.
    pub fn float_dtype(&self) -> Result<StoredDtype> {
        match self.dtype {
            Dtype::F32 => Ok(StoredDtype::F32),
            Dtype::F16 => Ok(StoredDtype::F16),
            Dtype::BF16 => Ok(StoredDtype::BF16),
            other => Err(Error::TensorDtype { name: self.name.to_string(), dtype: format!("{other:?}") }),
        }
    }

    /// Checks the shape against `expected`.
    pub fn expect_shape(&self, expected: &[usize]) -> Result<()> {
        if self.shape != expected {
            return Err(Error::TensorShape {
                name: self.name.to_string(),
                expected: expected.to_vec(),
                actual: self.shape.to_vec(),
            });
        }
        Ok(())
    }

    /// Converts elements `start..start + out.len()` (row-major) to f32.
    pub fn read_f32(&self, start: usize, out: &mut [f32]) -> Result<()> {
        self.float_view()?.read(start, out);
        Ok(())
    }

    /// Returns a view that converts elements without further checks.
    pub fn float_view(&self) -> Result<FloatView<'a>> {
        if self.packed {
            return Err(Error::InvalidCheckpoint {
                path: self.path.to_path_buf(),
                message: format!("tensor {} is stored packed and cannot be read as floats", self.name),
            });
        }
        Ok(FloatView { dtype: self.float_dtype()?, bytes: self.bytes })
    }

    /// Converts the whole tensor to f32.
    pub fn to_f32_vec(&self) -> Result<Vec<f32>> {
        let mut out = vec![0.0f32; self.len()];
        self.read_f32(0, &mut out)?;
        Ok(out)
    }

    /// The file the tensor is stored in.
    pub fn path(&self) -> &'a Path {
        self.path
    }
}

/// The bytes of a tensor whose float type has been checked.
#[derive(Clone, Copy)]
pub struct FloatView<'a> {
    dtype: StoredDtype,
    bytes: &'a [u8],
}

impl FloatView<'_> {
    /// Converts elements `start..start + out.len()` (row-major) to f32.
    ///
    /// # Panics
    /// If the range lies outside the tensor.
    pub fn read(&self, start: usize, out: &mut [f32]) {
        let size = self.dtype.size();
        self.dtype.convert(&self.bytes[start * size..(start + out.len()) * size], out);
    }
}

/// A `[rows, dim]` table read in place from the mapped checkpoint, one row at a time.
pub struct MappedTable {
    checkpoint: Arc<Checkpoint>,
    file: usize,
    /// Byte offset of row 0 in the mapped file.
    start: usize,
    dtype: StoredDtype,
    rows: usize,
    dim: usize,
}

impl MappedTable {
    /// Wraps the tensor `name`, which must exist, be a float type, and have shape `[rows, dim]`.
    pub fn new(checkpoint: Arc<Checkpoint>, name: &str, rows: usize, dim: usize) -> Result<MappedTable> {
        let tensor = checkpoint.get(name).ok_or_else(|| Error::MissingTensor {
            path: checkpoint.path().to_path_buf(),
            name: name.to_string(),
            hint: "required by the text tower".into(),
        })?;
        let dtype = tensor.float_dtype()?;
        tensor.expect_shape(&[rows, dim])?;
        let entry = &checkpoint.tensors[name];
        let (file, start) = (entry.file, entry.start);
        Ok(MappedTable { checkpoint, file, start, dtype, rows, dim })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Converts row `row` into `out` (`dim` values).
    ///
    /// # Panics
    /// If `row >= rows` or `out.len() != dim`; callers check token ids first.
    pub fn read_row(&self, row: usize, out: &mut [f32]) {
        assert!(row < self.rows && out.len() == self.dim, "row {row} of a {}x{} table", self.rows, self.dim);
        let size = self.dtype.size();
        let offset = self.start + row * self.dim * size;
        self.dtype.convert(&self.checkpoint.files[self.file].map[offset..offset + self.dim * size], out);
    }
}
