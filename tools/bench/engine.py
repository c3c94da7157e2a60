"""Measure the engine alone with `jclip bench` and write the engine section of BENCHMARKS.md.

Runs `jclip bench --suite scaling` (texts of 16 to 8192 tokens, 32 texts of mixed lengths,
images in batches of 1 and 8) at each thread count, with the load of the machine recorded.

    python tools/bench/engine.py --model DIR [--quick] [--write BENCHMARKS.md]
"""

import argparse
import json
import logging
import shlex
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import machine
import report

REPOSITORY = Path(__file__).resolve().parents[2]
DEFAULT_JCLIP = REPOSITORY / "target" / "release" / "jclip"
# --quick leaves out the two longest texts, which take minutes each with slow kernels.
QUICK_CASES = "text:16,text:64,text:512,mixed:32,image,image:8"

log = logging.getLogger("bench")


def main(argv=None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    log.setLevel(logging.INFO)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="checkpoint directory")
    parser.add_argument("--jclip", type=Path, default=DEFAULT_JCLIP, help="jclip binary (default: %(default)s)")
    parser.add_argument("--threads", default="1,2", help="thread counts, comma-separated (default: %(default)s)")
    parser.add_argument("--quick", action="store_true",
                        help=f"one timed run per case of {QUICK_CASES}: checks the harness")
    parser.add_argument("--write", type=Path, metavar="BENCHMARKS.md", help="replace the engine section of this file")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the jclip bench report to this file")
    args = parser.parse_args(argv)
    if not args.jclip.is_file():
        parser.error(f"no jclip binary at {args.jclip}; run `cargo build --release` or pass --jclip")

    command = [str(args.jclip), "bench", "--model", str(args.model), "--threads", args.threads, "--json"]
    if args.quick:
        command += ["--case", QUICK_CASES, "--warmup", "0", "--repeat", "1"]
    else:
        command += ["--suite", "scaling"]
    started_at = datetime.now(timezone.utc)
    load_before = machine.load_average()
    cpu_before = machine.CpuSnapshot.take()
    log.info("running %s", shlex.join(command))
    completed = subprocess.run(command, stdout=subprocess.PIPE, text=True)
    if completed.returncode != 0:
        log.error("jclip bench failed with status %d", completed.returncode)
        return completed.returncode
    bench = json.loads(completed.stdout)
    load_after = machine.load_average()
    cpu_after = machine.CpuSnapshot.take()
    others = cpu_before.others_until(cpu_after) if cpu_before and cpu_after else None

    run = {
        "command": "python " + shlex.join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
        "started_at": started_at.isoformat(timespec="seconds"),
        "minutes": (datetime.now(timezone.utc) - started_at).total_seconds() / 60,
        "quick": args.quick,
        "cpu_flags": machine.cpu_flags(),
        "hypervisor": machine.hypervisor(),
        "jclip_revision": machine.git_revision(REPOSITORY),
        "load_before": load_before,
        "load_after": load_after,
        "others": others,
        "busy_reasons": machine.busy_reasons(load_before, others),
    }
    markdown = report.engine_section(run, bench)
    print(markdown)
    if args.write:
        report.replace_section(args.write, report.ENGINE_HEADING, markdown)
        log.info("wrote the engine section of %s", args.write)
    if args.json:
        args.json.write_text(json.dumps({"run": run, "bench": bench}, indent=1) + "\n")
    for reason in run["busy_reasons"]:
        log.warning("the machine was busy: %s", reason)
    return 0


if __name__ == "__main__":
    sys.exit(main())
