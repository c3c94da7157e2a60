"""Write a synthetic jina-clip-v1 checkpoint directory with deterministic weights.

Example: python tools/reference/synth.py --preset full --out /tmp/jclip-full --dtype bf16
"""

import argparse
import sys
import time
from pathlib import Path

import checkpoint
import presets

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TOKENIZER = REPO_ROOT / "tests" / "fixtures" / "tokenizer.json"


def synthesize(preset_name: str, out_dir: Path, dtype: str = "f32", naming: str = "flash",
               seed: int = None, tokenizer: Path = DEFAULT_TOKENIZER) -> dict:
    """Generate and write one checkpoint directory, and return its config."""
    preset = presets.PRESETS[preset_name]
    seed = preset.seed if seed is None else seed
    config = presets.clip_config(preset, dtype)
    tensors = checkpoint.generate_tensors(config, seed, dtype)
    checkpoint.write_checkpoint(out_dir, config, tensors, tokenizer, preset.image_size, naming)
    return config


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", required=True, choices=sorted(presets.PRESETS))
    parser.add_argument("--out", required=True, type=Path, help="output directory (created if missing)")
    parser.add_argument("--dtype", default="f32", choices=sorted(checkpoint.STORAGE_DTYPES),
                        help="storage dtype of every tensor (values are generated in f32, then rounded)")
    parser.add_argument("--names", default="flash", choices=checkpoint.NAMINGS,
                        help="text tensor naming: flash (mixer.Wqkv, as in jina-clip-v1) or classic JinaBERT")
    parser.add_argument("--seed", type=int, default=None, help="PRNG seed (default: the preset's seed)")
    parser.add_argument("--tokenizer", type=Path, default=DEFAULT_TOKENIZER,
                        help="tokenizer.json to copy into the checkpoint")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    synthesize(args.preset, args.out, args.dtype, args.names, args.seed, args.tokenizer)
    elapsed = time.perf_counter() - started
    print(f"wrote {args.out} (preset {args.preset}, {args.dtype}, {args.names} names) "
          f"in {elapsed:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
