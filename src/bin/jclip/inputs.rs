//! Collecting inputs from the command line in the order they were given.

use std::io::Read;
use std::path::Path;

/// One input to embed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    Text(String),
}

impl Input {
    /// The `kind` field of the output.
    pub fn kind(&self) -> &'static str {
        match self {
            Input::Text(_) => "text",
        }
    }

    /// The `input` field of the output.
    pub fn label(&self) -> &str {
        match self {
            Input::Text(text) => text,
        }
    }
}

/// Reads a file with one text per line (`-` reads stdin). Every line is an
/// input, empty lines included; a final newline does not start another line.
pub fn read_lines(path: &Path) -> Result<Vec<String>, String> {
    let mut content = String::new();
    let read = if path == Path::new("-") {
        std::io::stdin().read_to_string(&mut content).map(|_| ())
    } else {
        std::fs::File::open(path).and_then(|mut file| file.read_to_string(&mut content).map(|_| ()))
    };
    read.map_err(|e| match e.kind() {
        std::io::ErrorKind::InvalidData => format!("{} is not valid UTF-8 text", path.display()),
        _ => format!("failed to read {}: {e}", path.display()),
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
    fn lines_keep_empty_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("texts.txt");
        std::fs::write(&path, "one\r\n\nthree\n").unwrap();
        assert_eq!(read_lines(&path).unwrap(), vec!["one", "", "three"]);
    }
}
