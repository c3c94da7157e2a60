//! The `jclip` command line, run as a user would.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{fixtures, synth_model};
use jclip::synth::{Preset, SynthDtype, SynthNaming};

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
fn embed_jsonl_keeps_input_order() {
    let dir = synth_model(Preset::Tiny, SynthNaming::Flash, SynthDtype::F32);
    let texts = dir.path().join("texts.txt");
    std::fs::write(&texts, "second\n\nfourth\n").unwrap();
    let image = fixtures().join("images/camera.png");
    let output = jclip(&[
        "embed",
        "--model",
        path(dir.path()),
        "--text",
        "first",
        "--texts-file",
        path(&texts),
        "--image",
        path(&image),
        "--format",
        "jsonl",
    ]);
    let lines: Vec<serde_json::Value> = stdout(&output).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let inputs: Vec<&str> = lines.iter().map(|l| l["input"].as_str().unwrap()).collect();
    assert_eq!(inputs, ["first", "second", "", "fourth", path(&image)]);
    let kinds: Vec<&str> = lines.iter().map(|l| l["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["text", "text", "text", "text", "image"]);
    assert_eq!(lines[2]["tokens"], 2, "empty text is [CLS] [SEP]");
    for line in &lines {
        let norm: f64 = line["embedding"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap().powi(2)).sum();
        assert!((norm - 1.0).abs() < 1e-5, "norm² {norm}");
    }
}

#[test]
fn embed_matches_the_library() {
    let dir = synth_model(Preset::Tiny, SynthNaming::Flash, SynthDtype::F32);
    let output =
        jclip(&["embed", "--model", path(dir.path()), "--text", "a cat", "--format", "json", "--no-normalize"]);
    let document: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(document["normalized"], false);
    let cli: Vec<f32> =
        document["embeddings"][0]["embedding"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
    let model = jclip::Model::open(dir.path(), &jclip::ModelOptions::default()).unwrap();
    assert_eq!(cli, model.embed_texts(&["a cat"], false).unwrap()[0].embedding);
}

#[test]
fn embed_npy_has_shape_and_dtype() {
    let dir = synth_model(Preset::Tiny, SynthNaming::Flash, SynthDtype::F32);
    let out = dir.path().join("out.npy");
    let output = jclip(&[
        "embed",
        "--model",
        path(dir.path()),
        "--text",
        "a",
        "--text",
        "b",
        "--format",
        "npy",
        "-o",
        path(&out),
    ]);
    stdout(&output);
    let bytes = std::fs::read(&out).unwrap();
    let header = String::from_utf8_lossy(&bytes[10..128]).to_string();
    assert!(header.contains("'descr': '<f4'") && header.contains("'shape': (2, 96)"), "{header}");
}

#[test]
fn errors_go_to_stderr_with_nonzero_exit() {
    let dir = synth_model(Preset::Tiny, SynthNaming::Flash, SynthDtype::F32);
    let output = jclip(&["embed", "--model", path(dir.path()), "--image", "/nonexistent/cat.png"]);
    assert!(!output.status.success());
    assert!(output.stdout.is_empty(), "nothing on stdout");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with("error: image 0:") && stderr.contains("/nonexistent/cat.png"), "{stderr}");

    let output = jclip(&["embed", "--model", "/nonexistent/model", "--text", "x"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/model"));

    let output = jclip(&["embed", "--model", path(dir.path())]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("nothing to embed"));
}

#[test]
fn errors_name_the_list_line() {
    let dir = synth_model(Preset::Tiny, SynthNaming::Flash, SynthDtype::F32);
    let scratch = tempfile::tempdir().unwrap();
    let camera = fixtures().join("images/camera.png");
    let images = scratch.path().join("images.txt");
    // A blank line counts: the missing image is on line 3.
    std::fs::write(&images, format!("{}\n\nmissing.png\n", camera.display())).unwrap();
    let output = jclip(&["embed", "--model", path(dir.path()), "--text", "x", "--images-file", path(&images)]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with("error: image 2:"), "{stderr}");
    assert!(stderr.contains(path(&scratch.path().join("missing.png"))), "{stderr}");
    assert!(stderr.contains(&format!("(listed on line 3 of {})", images.display())), "{stderr}");

    // In `similarity` the texts and the images are embedded apart; the line
    // is still the one of the failing input.
    let texts = scratch.path().join("texts.txt");
    std::fs::write(&texts, format!("short\n{}\n", "word ".repeat(40))).unwrap();
    let output = jclip(&[
        "similarity",
        "--model",
        path(dir.path()),
        "--max-length",
        "16",
        "--truncate",
        "none",
        "--image",
        path(&camera),
        "--texts-file",
        path(&texts),
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("text 1 has 42 tokens"), "{stderr}");
    assert!(stderr.contains(&format!("(listed on line 2 of {})", texts.display())), "{stderr}");

    // An input given as an option has no list line.
    let output = jclip(&["embed", "--model", path(dir.path()), "--image", "missing.png"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(!stderr.contains("listed on"), "{stderr}");
}

#[test]
fn truncate_none_rejects_long_text() {
    let dir = synth_model(Preset::Tiny, SynthNaming::Flash, SynthDtype::F32);
    let long = "word ".repeat(40);
    let output =
        jclip(&["embed", "--model", path(dir.path()), "--max-length", "16", "--truncate", "none", "--text", &long]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("42 tokens") && stderr.contains("16"), "{stderr}");
}

#[test]
fn classify_and_similarity_report_probabilities() {
    let dir = synth_model(Preset::Tiny, SynthNaming::Flash, SynthDtype::F32);
    let image = fixtures().join("images/chelsea.png");
    let output = jclip(&[
        "classify",
        "--model",
        path(dir.path()),
        "--image",
        path(&image),
        "--labels",
        "cat,dog,car",
        "--template",
        "a photo of a {}",
        "--format",
        "json",
    ]);
    let results: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    let labels = results[0]["labels"].as_array().unwrap();
    assert_eq!(labels.len(), 3);
    let total: f64 = labels.iter().map(|l| l["probability"].as_f64().unwrap()).sum();
    assert!((total - 1.0).abs() < 1e-9);
    assert!(labels.windows(2).all(|w| w[0]["probability"].as_f64() >= w[1]["probability"].as_f64()));
    assert_eq!(labels.iter().filter(|l| l["prompt"] == "a photo of a dog").count(), 1);

    let output = jclip(&["classify", "--model", path(dir.path()), "--image", path(&image), "--labels", "cat,dog, cat"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("label \"cat\" is given twice (label 3)"), "{stderr}");

    let output = jclip(&[
        "similarity",
        "--model",
        path(dir.path()),
        "--text",
        "a cat",
        "--text",
        "a car",
        "--image",
        path(&image),
        "--format",
        "json",
    ]);
    let report: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(report["cosine"].as_array().unwrap().len(), 2);
    assert_eq!(report["logit_scale"], 4.0);
    let column: f64 = report["probabilities"][0].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).sum();
    assert!((column - 1.0).abs() < 1e-9);
}

#[test]
fn similarity_table_tells_same_named_images_apart() {
    let dir = synth_model(Preset::Tiny, SynthNaming::Flash, SynthDtype::F32);
    let images = tempfile::tempdir().unwrap();
    for folder in ["first", "second"] {
        std::fs::create_dir(images.path().join(folder)).unwrap();
        std::fs::copy(fixtures().join("images/chelsea.png"), images.path().join(folder).join("a.png")).unwrap();
    }
    let first = images.path().join("first/a.png");
    let second = images.path().join("second/a.png");
    let output = jclip(&[
        "similarity",
        "--model",
        path(dir.path()),
        "--text",
        "",
        "--image",
        path(&first),
        "--image",
        path(&second),
    ]);
    let table = stdout(&output);
    assert!(table.contains("first/a.png"), "{table}");
    assert!(table.contains("second/a.png"), "{table}");
    assert!(table.contains("(empty text)"), "{table}");
}

#[test]
fn synth_writes_a_loadable_model() {
    let out = tempfile::tempdir().unwrap();
    let output = jclip(&["synth", "--preset", "small-grid", "--out", path(out.path())]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    for file in ["config.json", "model.safetensors", "tokenizer.json", "preprocessor_config.json"] {
        assert!(out.path().join(file).is_file(), "{file} missing");
    }
    let info = jclip(&["info", "--model", path(out.path())]);
    assert!(stdout(&info).contains("image tower: 2 blocks, width 96"));
    assert!(stdout(&info).contains("embedding: 64 values per text, 96 per image"));
}

#[test]
fn synth_refuses_a_directory_with_files_unless_forced() {
    let out = tempfile::tempdir().unwrap();
    let config = out.path().join("config.json");
    std::fs::write(&config, "{\"kept\": true}").unwrap();
    let output = jclip(&["synth", "--preset", "tiny", "--out", path(out.path())]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("is not empty"), "{stderr}");
    assert!(stderr.contains("--force"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), "{\"kept\": true}", "the file was left alone");

    let output = jclip(&["synth", "--preset", "tiny", "--out", path(out.path()), "--force"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(out.path().join("model.safetensors").is_file());
}

#[test]
fn input_errors_name_the_file_and_the_flag() {
    let dir = synth_model(Preset::Tiny, SynthNaming::Flash, SynthDtype::F32);
    let scratch = tempfile::tempdir().unwrap();
    let empty = scratch.path().join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    let output = jclip(&["embed", "--model", path(dir.path()), "--texts-file", path(&empty)]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("empty.txt held no inputs"), "{stderr}");

    let latin1 = scratch.path().join("latin1.txt");
    std::fs::write(&latin1, b"caf\xe9\n").unwrap();
    let output = jclip(&["embed", "--model", path(dir.path()), "--texts-file", path(&latin1)]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("line 1"), "{stderr}");
    assert!(stderr.contains("iconv"), "{stderr}");

    let output = jclip(&["embed", "--model", path(dir.path()), "--texts-file", "-", "--images-file", "-"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("stdin can be read once"), "{stderr}");

    let output = jclip(&["embed", "--model", path(&latin1), "--text", "x"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("is a file, not a directory"), "{stderr}");

    let output = jclip(&["embed", "--model", path(dir.path()), "--max-length", "1", "--text", "x"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("invalid option --max-length = 1"), "{stderr}");

    let output = jclip(&["embed", "--model", path(dir.path()), "--max-length", "100000000", "--text", "x"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("--max-length = 100000000: must be at most 65536 tokens per text"), "{stderr}");

    let output = Command::new(env!("CARGO_BIN_EXE_jclip"))
        .args(["embed", "--model", path(dir.path()), "--text", "x"])
        .env("JCLIP_THREADS", "abc")
        .output()
        .expect("run jclip");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("invalid environment variable JCLIP_THREADS=abc"), "{stderr}");

    for args in [&["embed", "--text", "x"][..], &["bench", "--case", "text:16"]] {
        let output = Command::new(env!("CARGO_BIN_EXE_jclip"))
            .args(args)
            .args(["--model", path(dir.path()), "--threads", "100000"])
            .output()
            .expect("run jclip");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{stderr}");
        assert!(stderr.contains("invalid option --threads = 100000: use 1 to 1024 threads"), "{args:?}: {stderr}");
    }
}

#[cfg(target_os = "linux")]
#[test]
fn full_stdout_is_an_error_not_a_panic() {
    let dir = synth_model(Preset::Tiny, SynthNaming::Flash, SynthDtype::F32);
    let image = fixtures().join("images/chelsea.png");
    let commands: [&[&str]; 3] = [
        &["info"],
        &["embed", "--model", path(dir.path()), "--text", "a"],
        &["similarity", "--model", path(dir.path()), "--text", "a", "--image", path(&image)],
    ];
    for args in commands {
        let full = std::fs::OpenOptions::new().write(true).open("/dev/full").expect("open /dev/full");
        let output = Command::new(env!("CARGO_BIN_EXE_jclip")).args(args).stdout(full).output().expect("run jclip");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains("failed to write the output to stdout"), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}
