"""Facts about the machine and the run: CPU, load, CPU time of other processes, versions.

Everything is read from Linux's /proc; on other systems the values are None.
"""

import os
import platform
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

# Instruction-set extensions worth naming in a benchmark table, in this order.
NOTABLE_FLAGS = (
    "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni", "avx512_bf16",
    "avx512_fp16", "amx_bf16", "amx_int8", "asimd", "asimddp", "bf16", "i8mm", "sve", "sve2",
)
# Other processes using more CPUs than this on average mark a run as busy.
BUSY_OTHER_CPUS = 0.1
# A one-minute load average above this before the run marks it as busy.
BUSY_LOAD_BEFORE = 0.5


def cpu_model() -> str:
    """Return the CPU model name from /proc/cpuinfo, or the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.split(":")[0].strip() in ("model name", "Model"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def cpu_flags() -> list:
    """Return the notable instruction-set flags of the first CPU in /proc/cpuinfo."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.split(":")[0].strip() in ("flags", "Features"):
                present = set(line.split(":", 1)[1].split())
                return [flag for flag in NOTABLE_FLAGS if flag in present]
    except OSError:
        pass
    return []


def hypervisor() -> str | None:
    """Return "a virtual machine" when /proc/cpuinfo has the hypervisor flag, else None."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    return "a virtual machine" if " hypervisor" in text else None


def threads_label(threads: int) -> str:
    """Return "1 thread" or "N threads"."""
    return "1 thread" if threads == 1 else f"{threads} threads"


def available_cpus() -> int:
    """Return the CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def load_average() -> tuple | None:
    try:
        return os.getloadavg()
    except OSError:
        return None


@dataclass(frozen=True)
class CpuSnapshot:
    """CPU time counters at one instant, in seconds."""

    wall: float
    # Time all CPUs spent running anything (user, nice, system, irq, softirq).
    machine_busy: float
    # Time the hypervisor ran something else while a CPU wanted to run.
    machine_steal: float
    # CPU time of this process and of its children that have been waited for.
    own: float

    @classmethod
    def take(cls) -> "CpuSnapshot | None":
        try:
            fields = Path("/proc/stat").read_text().splitlines()[0].split()
        except OSError:
            return None
        if fields[0] != "cpu":
            return None
        ticks = [int(value) for value in fields[1:]]
        hz = os.sysconf("SC_CLK_TCK")
        # user nice system idle iowait irq softirq steal (guest time is inside user).
        busy = sum(ticks[i] for i in (0, 1, 2, 5, 6)) / hz
        steal = (ticks[7] if len(ticks) > 7 else 0) / hz
        own = os.times()
        return cls(time.monotonic(), busy, steal,
                   own.user + own.system + own.children_user + own.children_system)

    def others_until(self, later: "CpuSnapshot") -> dict:
        """Return the average CPUs used by other processes and by the hypervisor until `later`.

        Children count as this process only once they have been waited for, so take
        `later` after every worker has exited.
        """
        seconds = max(later.wall - self.wall, 1e-3)
        other = (later.machine_busy - self.machine_busy) - (later.own - self.own)
        return {
            "other_cpus": max(other, 0.0) / seconds,
            "steal_cpus": (later.machine_steal - self.machine_steal) / seconds,
        }


def busy_reasons(load_before, others) -> list:
    """Return why the run should not be trusted; empty when the machine was otherwise idle."""
    reasons = []
    # The CPU use of other processes during the run is measured directly; the
    # load average before it, which still counts jobs that ended minutes
    # earlier, is the fallback where /proc/stat is unavailable.
    if others is None and load_before is not None and load_before[0] > BUSY_LOAD_BEFORE:
        reasons.append(f"the 1-minute load average was {load_before[0]:.2f} before the run")
    if others is not None:
        if others["other_cpus"] > BUSY_OTHER_CPUS:
            reasons.append(f"other processes used {others['other_cpus']:.2f} CPUs on average during it")
        if others["steal_cpus"] > BUSY_OTHER_CPUS:
            reasons.append(f"the hypervisor took {others['steal_cpus']:.2f} CPUs on average (steal time)")
    return reasons


def git_revision(repository: Path) -> str:
    """Return the short commit of `repository`, with "+changes" when the work tree differs from it."""
    def git(*args):
        return subprocess.run(["git", "-C", str(repository), *args], capture_output=True, text=True, check=True)

    try:
        revision = git("rev-parse", "--short", "HEAD").stdout.strip()
        dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return revision + ("+changes" if dirty else "")


def package_versions() -> dict:
    """Return the versions of the Python packages the peers run on."""
    import numpy
    import onnxruntime
    import timm
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "timm": timm.__version__,
        "numpy": numpy.__version__,
    }


def peak_rss_bytes() -> int | None:
    """Return the peak resident memory of this process (VmHWM) in bytes."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current resident memory; return False where Linux does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True
