//! `jclip bench --serve-stdin`: one open model serving timing requests on
//! stdin, one JSON object per line, so that a harness can interleave blocks
//! of runs of several engines without reloading any of them.
//!
//! After opening the model, the process writes a ready line:
//!
//! ```text
//! {"ready":true,"version":"0.1.0","isa":"scalar","precision":"f32","threads":2,"open_ms":812.5,"since_main_ms":815.0}
//! ```
//!
//! Each request line names its inputs with exactly one of `case` (a `--case`
//! value), `texts` (strings) or `images` (file paths), or requests `"probe":
//! true` (the FMA ceiling and matmul speed). Optional fields: `warmup` (untimed
//! runs, default 0), `repeat` (timed runs, default 1) and `embeddings` (return
//! the L2-normalised vectors of the last run, default false):
//!
//! ```text
//! {"texts":["a photo of a cat"],"warmup":1,"repeat":5,"embeddings":true}
//! ```
//!
//! The reply contains `ok`, then `times_ms`, `tokens` (per input), `gflop` (per
//! run), `peak_rss_bytes` (since the request began) and, on request,
//! `embeddings`; or `ok: false` and an `error` message, after which the next
//! request is read. The process ends at the end of stdin.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Instant;

use serde::Deserialize;
use serde_json::{Value, json};

use super::cases::{self, CaseInputs, CaseSpec};
use super::{BenchArgs, peak, since_main_ms, system};
use crate::CliResult;

/// One request line.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    case: Option<String>,
    texts: Option<Vec<String>>,
    images: Option<Vec<PathBuf>>,
    #[serde(default)]
    probe: bool,
    #[serde(default)]
    warmup: usize,
    #[serde(default = "one_run")]
    repeat: usize,
    #[serde(default)]
    embeddings: bool,
}

fn one_run() -> usize {
    1
}

pub fn run(args: &BenchArgs) -> CliResult {
    if args.threads.len() > 1 {
        return Err("--serve-stdin opens one model: give at most one --threads value".into());
    }
    let max_length = args.max_length(&args.cases);
    let opening = Instant::now();
    let model = args.open_model(args.threads.first().copied(), max_length)?;
    let ready = json!({
        "ready": true,
        "version": env!("CARGO_PKG_VERSION"),
        "isa": model.isa().to_string(),
        "precision": model.precision().to_string(),
        "weights_in_place": model.weights_in_place(),
        "spin": model.spin(),
        "threads": model.threads(),
        "max_length": max_length,
        "open_ms": opening.elapsed().as_secs_f64() * 1e3,
        "since_main_ms": since_main_ms(),
    });
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    writeln!(out, "{ready}")?;
    out.flush()?;

    for line in std::io::stdin().lock().lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let reply = match handle(&model, args, &line) {
            Ok(reply) => reply,
            Err(message) => json!({ "ok": false, "error": message }),
        };
        writeln!(out, "{reply}")?;
        out.flush()?;
    }
    Ok(())
}

/// Parses and runs one request, returning the reply.
fn handle(model: &jclip::Model, args: &BenchArgs, line: &str) -> Result<Value, String> {
    let request: Request = serde_json::from_str(line).map_err(|e| format!("invalid request {line:?}: {e}"))?;
    let named = [request.case.is_some(), request.texts.is_some(), request.images.is_some(), request.probe];
    if named.iter().filter(|&&set| set).count() != 1 {
        return Err("a request needs exactly one of case, texts, images or probe".into());
    }
    if request.probe {
        let peaks = peak::measure(model);
        return serde_json::to_value(peaks)
            .map(|peaks| json!({ "ok": true, "peaks": peaks }))
            .map_err(|e| e.to_string());
    }
    if request.repeat == 0 {
        return Err("repeat must be at least 1".into());
    }

    let inputs = if let Some(spec) = &request.case {
        let case: CaseSpec = spec.parse()?;
        let images = if matches!(case, CaseSpec::Image { .. }) { args.image_files()? } else { Vec::new() };
        cases::build_inputs(&case, model.tokenizer(), &images)?
    } else if let Some(texts) = request.texts {
        CaseInputs::Texts(texts)
    } else {
        CaseInputs::Images(request.images.unwrap_or_default())
    };
    if inputs.is_empty() {
        return Err("the request has no inputs".into());
    }

    let per_request_rss = system::reset_peak_rss();
    for _ in 0..request.warmup {
        inputs.embed(model).map_err(|e| e.to_string())?;
    }
    let mut times_ms = Vec::with_capacity(request.repeat);
    let mut last = Vec::new();
    for _ in 0..request.repeat {
        let started = Instant::now();
        last = inputs.embed(model).map_err(|e| e.to_string())?;
        times_ms.push(started.elapsed().as_secs_f64() * 1e3);
    }

    let tokens: Vec<usize> = last.iter().map(|e| e.tokens).collect();
    let config = model.config();
    let flops = match &inputs {
        CaseInputs::Texts(_) => Some(tokens.iter().map(|&t| cases::text_flops(&config.text, t)).sum::<f64>()),
        CaseInputs::Images(paths) => config.vision.as_ref().map(|v| paths.len() as f64 * cases::image_flops(v)),
    };
    let mut reply = json!({
        "ok": true,
        "times_ms": times_ms,
        "tokens": tokens,
        "gflop": flops.map(|f| f / 1e9),
        "peak_rss_bytes": system::peak_rss_bytes(),
        "peak_rss_per_request": per_request_rss,
    });
    if request.embeddings {
        reply["embeddings"] = json!(last.iter().map(|e| &e.embedding).collect::<Vec<_>>());
    }
    Ok(reply)
}
