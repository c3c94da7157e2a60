//! `jclip bench` on a tiny synthetic checkpoint: the JSON report, the table
//! and the stdin protocol that tools/bench drives.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{fixtures, synth_model};
use jclip::synth::{Preset, SynthDtype, SynthNaming};
use serde_json::Value;

fn jclip(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_jclip")).args(args).output().expect("run jclip")
}

fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "jclip failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn json_report_covers_every_case() {
    let dir = synth_model(Preset::Tiny, SynthNaming::Flash, SynthDtype::F32);
    let image = fixtures().join("images/camera.png");
    let output = jclip(&[
        "bench",
        "--model",
        path(dir.path()),
        "--threads",
        "1,2",
        "--case",
        "text:16,text:8x2,mixed:3",
        "--case",
        "image:2",
        "--image",
        path(&image),
        "--warmup",
        "0",
        "--repeat",
        "2",
        "--no-peak",
        "--json",
    ]);

    let report: Value = serde_json::from_str(&stdout(&output)).unwrap();
    let cases = report["cases"].as_array().unwrap();
    let names: Vec<(&str, u64)> =
        cases.iter().map(|c| (c["case"].as_str().unwrap(), c["threads"].as_u64().unwrap())).collect();
    assert_eq!(
        names,
        [
            ("text:16", 1),
            ("text:8x2", 1),
            ("mixed:3", 1),
            ("image:2", 1),
            ("text:16", 2),
            ("text:8x2", 2),
            ("mixed:3", 2),
            ("image:2", 2)
        ]
    );

    // Tokens per run: texts of exact lengths (mixed:3 is 16, 264 and 512), images of 197.
    let tokens: Vec<u64> = cases.iter().map(|c| c["tokens"].as_u64().unwrap()).collect();
    assert_eq!(tokens, [16, 16, 792, 394, 16, 16, 792, 394]);

    for case in cases {
        assert_eq!(case["runs"], 2, "{case}");
        assert_eq!(case["times_ms"].as_array().unwrap().len(), 2);
        let latency = &case["latency_ms"];
        assert!(latency["min"].as_f64().unwrap() <= latency["p50"].as_f64().unwrap());
        assert!(latency["p50"].as_f64().unwrap() <= latency["p99"].as_f64().unwrap());
        assert!(case["gflop"].as_f64().unwrap() > 0.0);
        assert!(case["peak_rss_bytes"].as_u64().unwrap() > 0);
    }

    assert!(report["peaks"].as_array().unwrap().is_empty(), "--no-peak skips the probes");
    assert_eq!(report["spin"], true, "idle workers poll by default");
    assert!(report["first_embedding_ms"].as_f64().unwrap() >= report["first_open_ms"].as_f64().unwrap());
    assert!(report["process_peak_rss_bytes"].as_u64().unwrap() >= cases[0]["peak_rss_bytes"].as_u64().unwrap());
}

#[test]
fn table_lists_cases_and_ceilings() {
    let dir = synth_model(Preset::Tiny, SynthNaming::Flash, SynthDtype::F32);
    let output =
        jclip(&["bench", "--model", path(dir.path()), "--threads", "1", "--case", "text:64x2", "--repeat", "1"]);
    let table = stdout(&output);
    assert!(table.contains("p50 ms"), "{table}");
    assert!(table.contains("2 texts × 64 tokens"), "{table}");
    assert!(table.contains("ceiling with 1 thread: FP32 FMA"), "{table}");
    assert!(table.contains("load average before"), "{table}");
    assert!(table.contains("idle workers polling"), "{table}");
}

#[test]
fn no_spin_is_reported() {
    let dir = synth_model(Preset::Tiny, SynthNaming::Flash, SynthDtype::F32);
    let args = ["bench", "--model", path(dir.path()), "--threads", "2", "--case", "text:16", "--repeat", "1"];
    let output = jclip(&[&args[..], &["--no-peak", "--no-spin", "--json"]].concat());
    let report: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(report["spin"], false, "--no-spin lets idle workers sleep");
}

#[test]
fn invalid_cases_are_rejected() {
    let dir = synth_model(Preset::Tiny, SynthNaming::Flash, SynthDtype::F32);
    let output = jclip(&["bench", "--model", path(dir.path()), "--case", "text:1"]);
    assert!(!output.status.success());
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(message.contains("at least 3 tokens"), "{message}");

    let output = jclip(&["bench", "--model", path(dir.path()), "--case", "text:600", "--max-length", "512"]);
    assert!(!output.status.success());
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(message.contains("600 tokens"), "{message}");
    assert!(message.contains("--max-length"), "{message}");
}

/// A `jclip bench --serve-stdin` process with line-based JSON requests.
struct Server {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    stdout: BufReader<std::process::ChildStdout>,
}

impl Server {
    fn start(model: &Path) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_jclip"))
            .args(["bench", "--model", path(model), "--threads", "1", "--serve-stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start jclip bench --serve-stdin");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Server { child, stdin, stdout }
    }

    fn read(&mut self) -> Value {
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("invalid answer {line:?}: {e}"))
    }

    fn request(&mut self, request: &str) -> Value {
        writeln!(self.stdin, "{request}").unwrap();
        self.stdin.flush().unwrap();
        self.read()
    }
}

#[test]
fn serve_answers_each_request() {
    let dir = synth_model(Preset::Tiny, SynthNaming::Flash, SynthDtype::F32);
    let mut server = Server::start(dir.path());
    let ready = server.read();
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["threads"], 1);
    assert_eq!(ready["precision"], "f32");

    let answer = server.request(r#"{"texts":["a photo of a cat","a dog"],"repeat":3,"embeddings":true}"#);
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(answer["times_ms"].as_array().unwrap().len(), 3);
    assert_eq!(answer["tokens"], serde_json::json!([7, 4]));
    let model = jclip::Model::open(dir.path(), &jclip::ModelOptions::default().threads(1)).unwrap();
    let expected = model.embed_texts(&["a photo of a cat", "a dog"], true).unwrap();
    for (served, expected) in answer["embeddings"].as_array().unwrap().iter().zip(&expected) {
        let served: Vec<f32> = served.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        assert_eq!(served, expected.embedding, "the served vector is the library's");
    }

    let image = fixtures().join("images/rocket.jpg");
    let answer = server.request(&format!(r#"{{"images":["{}","{}"],"warmup":1}}"#, path(&image), path(&image)));
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(answer["tokens"], serde_json::json!([197, 197]));
    assert!(answer.get("embeddings").is_none());

    let answer = server.request(r#"{"case":"text:16"}"#);
    assert_eq!(answer["tokens"], serde_json::json!([16]));

    let answer = server.request(r#"{"texts":["x"],"case":"text:16"}"#);
    assert_eq!(answer["ok"], false);
    assert!(answer["error"].as_str().unwrap().contains("exactly one of"));
    let answer = server.request("not json");
    assert_eq!(answer["ok"], false);

    let answer = server.request(r#"{"probe":true}"#);
    assert_eq!(answer["ok"], true, "{answer}");
    assert!(answer["peaks"]["fma_gflops"].as_f64().unwrap() > 0.0);
    assert!(answer["peaks"]["matmul_gflops"].as_f64().unwrap() > 0.0);

    drop(server.stdin);
    let status = server.child.wait().unwrap();
    assert!(status.success(), "the server exits at the end of stdin");
}
