//! `jclip synth`: write a synthetic checkpoint in the real file layout.

use std::path::PathBuf;
use std::time::Instant;

use jclip::synth::{Preset, SynthDtype, SynthNaming, SynthOptions, write_model_dir};

use crate::CliResult;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PresetArg {
    /// Text hidden 96, 3 layers; image width 96, 2 blocks (a few MB).
    Tiny,
    /// Text hidden 64, 2 layers; 64 px images in a 4×4 grid.
    SmallGrid,
    /// The real jina-clip-v1 shapes (223M parameters, 891 MB in f32).
    Full,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DtypeArg {
    F32,
    F16,
    Bf16,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum NamingArg {
    /// flash-attn style text names, as jina-clip-v1.
    Flash,
    /// Classic JinaBERT text names.
    Classic,
    /// A bare jina-embeddings-v2 text model (no image tower, no prefix).
    BareText,
}

/// Arguments of `jclip synth`.
#[derive(clap::Args, Debug)]
pub struct SynthArgs {
    /// Model shapes.
    #[arg(long, value_enum, default_value_t = PresetArg::Full)]
    pub preset: PresetArg,

    /// Directory to write (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,

    /// Seed of the weight generator (default: the preset's, as in the reference fixtures).
    #[arg(long)]
    pub seed: Option<u64>,

    /// Storage type of the weights.
    #[arg(long, value_enum, default_value_t = DtypeArg::F32)]
    pub dtype: DtypeArg,

    /// Tensor naming of the text tower.
    #[arg(long, value_enum, default_value_t = NamingArg::Flash)]
    pub names: NamingArg,

    /// Write into --out even if it contains files; files of the same names are replaced.
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: &SynthArgs) -> CliResult {
    let preset = match args.preset {
        PresetArg::Tiny => Preset::Tiny,
        PresetArg::SmallGrid => Preset::SmallGrid,
        PresetArg::Full => Preset::Full,
    };
    let options = SynthOptions {
        preset,
        seed: args.seed.unwrap_or(preset.default_seed()),
        dtype: match args.dtype {
            DtypeArg::F32 => SynthDtype::F32,
            DtypeArg::F16 => SynthDtype::F16,
            DtypeArg::Bf16 => SynthDtype::BF16,
        },
        naming: match args.names {
            NamingArg::Flash => SynthNaming::Flash,
            NamingArg::Classic => SynthNaming::Classic,
            NamingArg::BareText => SynthNaming::BareText,
        },
    };
    if !args.force && args.out.exists() {
        let mut entries = std::fs::read_dir(&args.out)
            .map_err(|e| format!("--out {} is not a directory that can be read: {e}", args.out.display()))?;
        if entries.next().is_some() {
            return Err(format!(
                "--out {} is not empty; random weights would replace any model there. \
                 Choose a new or empty directory, or add --force to write into it",
                args.out.display()
            )
            .into());
        }
    }
    let started = Instant::now();
    write_model_dir(&args.out, &options)?;
    log::info!("wrote {} in {:.1} s", args.out.display(), started.elapsed().as_secs_f64());
    eprintln!("wrote the {} checkpoint (seed {}) to {}", preset.name(), options.seed, args.out.display());
    Ok(())
}
