//! Writing embeddings as JSON, JSON Lines or NumPy `.npy`.

use std::io::Write;

use serde::Serialize;

/// Output format of `jclip embed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON document with every embedding.
    Json,
    /// One JSON object per input and line, in input order.
    Jsonl,
    /// A float32 NumPy array of shape [inputs, dim].
    Npy,
}

/// One embedded input as written to JSON.
#[derive(Serialize, Debug)]
pub struct Record<'a> {
    pub kind: &'static str,
    pub input: &'a str,
    /// Tokens the tower saw: for a text with [CLS] and [SEP], for an image its patches plus CLS.
    pub tokens: usize,
    /// Whether the text was cut at the token limit (texts only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncated: Option<bool>,
    pub embedding: &'a [f32],
}

#[derive(Serialize)]
struct Document<'a> {
    model: &'a str,
    normalized: bool,
    count: usize,
    embeddings: &'a [Record<'a>],
}

/// Writes `records` in `format`.
pub fn write(
    out: &mut dyn Write,
    format: Format,
    model: &str,
    normalized: bool,
    records: &[Record<'_>],
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    match format {
        Format::Json => {
            let document = Document { model, normalized, count: records.len(), embeddings: records };
            serde_json::to_writer(&mut *out, &document)?;
            out.write_all(b"\n")?;
        }
        Format::Jsonl => {
            for record in records {
                serde_json::to_writer(&mut *out, record)?;
                out.write_all(b"\n")?;
            }
        }
        Format::Npy => write_npy(out, records)?,
    }
    out.flush()?;
    Ok(())
}

/// Writes a version 1.0 `.npy` file: little-endian float32, C order, shape [n, dim].
fn write_npy(out: &mut dyn Write, records: &[Record<'_>]) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let dim = records.first().map_or(0, |record| record.embedding.len());
    if let Some(other) = records.iter().find(|record| record.embedding.len() != dim) {
        return Err(format!(
            "--format npy needs embeddings of one width, but {} {:?} has {} values and the first input {dim}; \
             use --format json or jsonl",
            other.kind,
            other.input,
            other.embedding.len()
        )
        .into());
    }
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {dim}), }}", records.len());
    // Magic (6) + version (2) + header length (2) + header + newline is a multiple of 64.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    out.write_all(b"\x93NUMPY\x01\x00")?;
    out.write_all(&(header.len() as u16).to_le_bytes())?;
    out.write_all(header.as_bytes())?;
    for record in records {
        for value in record.embedding {
            out.write_all(&value.to_le_bytes())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_header_is_aligned() {
        let embedding = [1.0f32, 2.0];
        let records = [Record { kind: "text", input: "a", tokens: 3, truncated: Some(false), embedding: &embedding }];
        let mut bytes = Vec::new();
        write(&mut bytes, Format::Npy, "m", true, &records).unwrap();
        let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + header_len) % 64, 0);
        assert!(String::from_utf8_lossy(&bytes[10..10 + header_len]).contains("'shape': (1, 2)"));
        assert_eq!(bytes.len(), 10 + header_len + 8);
        assert_eq!(&bytes[10 + header_len..], &[0, 0, 0x80, 0x3f, 0, 0, 0, 0x40]);
    }
}
