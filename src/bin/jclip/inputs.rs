//! Collecting inputs from the command line in the order they were given.

use std::io::Read;
use std::path::{Path, PathBuf};

use clap::ArgMatches;

/// One input to embed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    Text(String),
    Image(PathBuf),
}

impl Input {
    /// The `kind` field of the output.
    pub fn kind(&self) -> &'static str {
        match self {
            Input::Text(_) => "text",
            Input::Image(_) => "image",
        }
    }

    /// The `input` field of the output: the text or the image path.
    pub fn label(&self) -> String {
        match self {
            Input::Text(text) => text.clone(),
            Input::Image(path) => path.display().to_string(),
        }
    }

    /// The library's view of the input.
    pub fn as_library_input(&self) -> jclip::Input<'_> {
        match self {
            Input::Text(text) => jclip::Input::Text(text),
            Input::Image(path) => jclip::Input::ImageFile(path),
        }
    }
}

/// Inputs given as repeatable options, with the clap ids of the options.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct InputArgs {
    /// A text to embed; repeatable.
    #[arg(long = "text", value_name = "TEXT")]
    pub texts: Vec<String>,

    /// A file with one text per line ("-" reads stdin); repeatable.
    #[arg(long = "texts-file", value_name = "FILE")]
    pub texts_files: Vec<PathBuf>,

    /// An image file (JPEG, PNG, WebP, GIF, BMP, TIFF); repeatable.
    #[arg(long = "image", value_name = "PATH")]
    pub images: Vec<PathBuf>,

    /// A file with one image path per line ("-" reads stdin); repeatable.
    #[arg(long = "images-file", value_name = "FILE")]
    pub images_files: Vec<PathBuf>,
}

impl InputArgs {
    /// Collects every input in command-line order; files expand in place.
    pub fn collect(&self, matches: &ArgMatches) -> Result<Collected, String> {
        let stdin = Path::new("-");
        let stdin_readers = self.texts_files.iter().chain(&self.images_files).filter(|path| *path == stdin).count();
        if stdin_readers > 1 {
            return Err(format!(
                "{stdin_readers} list files read stdin (\"-\"), but stdin can be read once; \
                 give at most one --texts-file - or --images-file -"
            ));
        }
        let indices = |id: &str| matches.indices_of(id).map(|i| i.collect::<Vec<_>>()).unwrap_or_default();
        let mut positioned: Vec<(usize, Vec<Listed>)> = Vec::new();
        for (text, index) in self.texts.iter().zip(indices("texts")) {
            positioned.push((index, vec![(Input::Text(text.clone()), None)]));
        }
        for (path, index) in self.texts_files.iter().zip(indices("texts_files")) {
            let texts = read_lines(path)?
                .into_iter()
                .enumerate()
                .map(|(line, text)| (Input::Text(text), Some(ListLine { file: path.clone(), line: line + 1 })));
            positioned.push((index, texts.collect()));
        }
        for (path, index) in self.images.iter().zip(indices("images")) {
            positioned.push((index, vec![(Input::Image(path.clone()), None)]));
        }
        for (path, index) in self.images_files.iter().zip(indices("images_files")) {
            let lines = read_lines(path)?;
            let base = if path == Path::new("-") { Path::new("") } else { path.parent().unwrap_or(Path::new("")) };
            let images =
                lines.into_iter().enumerate().filter(|(_, line)| !line.trim().is_empty()).map(|(line, entry)| {
                    // Relative paths in a list file are relative to the list file.
                    let image = PathBuf::from(entry.trim());
                    let image = if image.is_absolute() { image } else { base.join(image) };
                    (Input::Image(image), Some(ListLine { file: path.clone(), line: line + 1 }))
                });
            positioned.push((index, images.collect()));
        }
        positioned.sort_by_key(|(index, _)| *index);
        let (inputs, lines) = positioned.into_iter().flat_map(|(_, inputs)| inputs).unzip();
        Ok(Collected { inputs, lines })
    }
}

/// An input with the list-file line it came from, if any.
type Listed = (Input, Option<ListLine>);

/// The line of a list file (`--texts-file`, `--images-file`) an input came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListLine {
    pub file: PathBuf,
    /// Counted from 1.
    pub line: usize,
}

impl std::fmt::Display for ListLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let file = if self.file == Path::new("-") { "stdin".to_string() } else { self.file.display().to_string() };
        write!(f, "line {} of {file}", self.line)
    }
}

/// The inputs of a command in order, with the list-file line of each.
#[derive(Debug, Default)]
pub struct Collected {
    pub inputs: Vec<Input>,
    /// `lines[i]` is where `inputs[i]` was listed, `None` when given as an option.
    lines: Vec<Option<ListLine>>,
}

impl Collected {
    /// Returns the texts, in order, with their list-file lines.
    pub fn texts(&self) -> (Vec<String>, Vec<Option<ListLine>>) {
        self.of_kind(|input| if let Input::Text(text) = input { Some(text.clone()) } else { None })
    }

    /// Returns the image paths, in order, with their list-file lines.
    pub fn images(&self) -> (Vec<PathBuf>, Vec<Option<ListLine>>) {
        self.of_kind(|input| if let Input::Image(path) = input { Some(path.clone()) } else { None })
    }

    fn of_kind<T>(&self, pick: impl Fn(&Input) -> Option<T>) -> (Vec<T>, Vec<Option<ListLine>>) {
        self.inputs.iter().zip(&self.lines).filter_map(|(input, line)| Some((pick(input)?, line.clone()))).unzip()
    }

    /// Wraps an error of a library call on all the inputs in order.
    pub fn locate(&self, error: jclip::Error) -> Located {
        locate(error, &self.lines)
    }
}

/// Wraps an error of a library call whose inputs came from `lines`, adding
/// the list-file line of the input it is about, when there is one.
pub fn locate(error: jclip::Error, lines: &[Option<ListLine>]) -> Located {
    let line = error.input_index().and_then(|index| lines.get(index).cloned().flatten());
    Located { error, line }
}

/// A library error with the list-file line of the input it is about.
#[derive(Debug)]
pub struct Located {
    error: jclip::Error,
    line: Option<ListLine>,
}

impl std::fmt::Display for Located {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.line {
            Some(line) => write!(f, "{} (listed on {line})", self.error),
            None => write!(f, "{}", self.error),
        }
    }
}

impl std::error::Error for Located {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.error)
    }
}

impl InputArgs {
    /// Explains why no input was collected: no option given, or list files without entries.
    pub fn nothing_given(&self) -> String {
        let files: Vec<String> =
            self.texts_files.iter().chain(&self.images_files).map(|p| p.display().to_string()).collect();
        if files.is_empty() {
            "nothing to embed: give --text, --texts-file, --image or --images-file".into()
        } else {
            format!(
                "nothing to embed: {} held no inputs (image lists skip blank lines); give a file with one input per line",
                files.join(", ")
            )
        }
    }
}

/// Reads a file with one entry per line (`-` reads stdin). Every line is an
/// entry, empty lines included; a final newline does not start another line.
pub fn read_lines(path: &Path) -> Result<Vec<String>, String> {
    let mut bytes = Vec::new();
    let read = if path == Path::new("-") {
        std::io::stdin().read_to_end(&mut bytes).map(|_| ())
    } else {
        std::fs::File::open(path).and_then(|mut file| file.read_to_end(&mut bytes).map(|_| ()))
    };
    read.map_err(|e| format!("failed to read {}: {e}", path.display()))?;
    let content = String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let before = &e.as_bytes()[..at];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let column = at - before.iter().rposition(|&b| b == b'\n').map_or(0, |newline| newline + 1) + 1;
        format!(
            "{} is not valid UTF-8 text (line {line}, byte {column} of the line); \
             convert it first, e.g. `iconv -f LATIN1 -t UTF-8 FILE > FILE.utf8` for a Latin-1 file",
            path.display()
        )
    })?;
    if content.is_empty() {
        return Ok(Vec::new());
    }
    let body = content.strip_suffix('\n').unwrap_or(&content);
    Ok(body.split('\n').map(|line| line.strip_suffix('\r').unwrap_or(line).to_string()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_utf8_is_located() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latin1.txt");
        std::fs::write(&path, b"caf\xe9\nna\xefve\n").unwrap();
        let message = read_lines(&path).unwrap_err();
        assert!(message.contains("line 1, byte 4 of the line"), "{message}");
        std::fs::write(&path, b"ok\nna\xefve\n").unwrap();
        let message = read_lines(&path).unwrap_err();
        assert!(message.contains("line 2, byte 3 of the line"), "{message}");
    }

    #[test]
    fn lines_keep_empty_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("texts.txt");
        std::fs::write(&path, "one\r\n\nthree\n").unwrap();
        assert_eq!(read_lines(&path).unwrap(), vec!["one", "", "three"]);
    }
}
