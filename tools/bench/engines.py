"""The compared engines and the worker processes that run them.

Every engine runs in its own process with one model loaded. It reads JSON requests on stdin
and writes one JSON line per request on stdout: `jclip bench --serve-stdin` for jclip, worker.py for
PyTorch and ONNX Runtime. No sockets are opened.
"""

import json
import os
import select
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from machine import threads_label

WORKER = Path(__file__).resolve().parent / "worker.py"
# Seconds to wait for one reply (a block of runs) before giving up on a worker.
REPLY_TIMEOUT = 1800.0
# Seconds to wait for a worker to exit once its stdin is closed.
EXIT_TIMEOUT = 60.0


@dataclass(frozen=True)
class EngineSpec:
    key: str
    label: str
    kind: str  # "jclip", "torch" or "onnxruntime"
    # Extra command-line arguments of the worker, e.g. the precision.
    arguments: tuple = ()


# The compared engines, in table order. PyTorch fp32 is the accuracy reference and jclip fp32
# the speed baseline. The jclip precisions pack the same original checkpoint at load.
ENGINES = (
    EngineSpec("pytorch-fp32", "PyTorch eager fp32", "torch"),
    EngineSpec("ort-fp32", "ONNX Runtime fp32", "onnxruntime", ("--precision", "fp32")),
    EngineSpec("ort-int8", "ONNX Runtime int8 (dynamic)", "onnxruntime", ("--precision", "int8")),
    EngineSpec("jclip-fp32", "jclip fp32", "jclip", ("--dtype", "f32")),
    EngineSpec("jclip-bf16", "jclip bf16", "jclip", ("--dtype", "bf16")),
    EngineSpec("jclip-int8", "jclip int8", "jclip", ("--dtype", "int8")),
)
REFERENCE = "pytorch-fp32"
BASELINE = "jclip-fp32"


def command(spec: EngineSpec, threads: int, model: Path, jclip: Path, onnx_dir: Path | None) -> list:
    """Return the command line of the worker of `spec`."""
    if spec.kind == "jclip":
        return [str(jclip), "bench", "--model", str(model), "--threads", str(threads), "--serve-stdin",
                *spec.arguments]
    base = [sys.executable, str(WORKER), "--engine", spec.kind, "--model", str(model), "--threads", str(threads)]
    if spec.kind == "onnxruntime":
        base += ["--onnx-dir", str(onnx_dir)]
    return base + list(spec.arguments)


def environment(threads: int) -> dict:
    """Return the environment of a worker: thread pools of OpenMP, MKL and tokenizers pinned."""
    env = dict(os.environ)
    env.update({
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        # The tokenizers library would otherwise encode on a pool of every CPU.
        "TOKENIZERS_PARALLELISM": "false",
    })
    return env


class WorkerError(RuntimeError):
    pass


class Worker:
    """One running engine. `spawned_at` is the monotonic time just before the process started."""

    def __init__(self, spec: EngineSpec, threads: int, argv: list, log_path: Path):
        self.spec = spec
        self.threads = threads
        self.log_path = log_path
        self._log = open(log_path, "w")
        self.spawned_at = time.monotonic()
        self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
                                        text=True, env=environment(threads))
        self.ready = self._read()
        if not self.ready.get("ready"):
            raise WorkerError(f"{spec.label}: expected a ready line, got {self.ready}")

    def _read(self) -> dict:
        readable, _, _ = select.select([self.process.stdout], [], [], REPLY_TIMEOUT)
        line = self.process.stdout.readline() if readable else ""
        if not line:
            if readable:
                self.process.wait(timeout=EXIT_TIMEOUT)
                reason = f"exited with status {self.process.returncode}"
            else:
                self.process.kill()
                reason = f"sent no reply within {REPLY_TIMEOUT:.0f} s and was stopped"
            raise WorkerError(f"{self.spec.label} with {threads_label(self.threads)} {reason}; its log "
                              f"{self.log_path} ends with:\n{self._log_tail()}")
        return json.loads(line)

    def _log_tail(self, lines: int = 20) -> str:
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def request(self, **fields) -> dict:
        """Send one request and return its reply; raise WorkerError when the worker reports an error."""
        self.process.stdin.write(json.dumps(fields) + "\n")
        self.process.stdin.flush()
        reply = self._read()
        if not reply.get("ok"):
            raise WorkerError(f"{self.spec.label} with {threads_label(self.threads)} rejected a request: "
                              f"{reply.get('error')}")
        return reply

    def close(self) -> None:
        """Close stdin, which ends the worker, and wait for it."""
        if self.process.stdin and not self.process.stdin.closed:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()
