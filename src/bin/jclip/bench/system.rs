//! Operating-system readings for the benchmark: resident memory,
//! load, CPU time of this process and of the whole machine, and the CPU model.
//! Everything comes from Linux's `/proc`; on other systems the values are
//! absent and the report leaves them out.

use std::time::Instant;

use serde::Serialize;

/// Clock ticks per second of the CPU times in `/proc/stat` and
/// `/proc/self/stat` (`USER_HZ`, printed by `getconf CLK_TCK`).
/// NOTE: assumed to be 100, its value on x86-64 Linux; reading it needs libc's `sysconf`.
const USER_HZ: f64 = 100.0;

/// Other processes using more CPUs than this on average mark a run as busy.
pub const BUSY_OTHER_CPUS: f64 = 0.1;
/// A one-minute load average above this before the run marks it as busy,
/// where the CPU use of other processes cannot be measured.
pub const BUSY_LOAD_BEFORE: f64 = 0.5;

/// Returns a field of `/proc/self/status` given in kB, in bytes.
fn status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with(field))?;
    let kilobytes: u64 =
        line[field.len()..].trim_start_matches(':').trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kilobytes * 1024)
}

/// Returns the peak resident memory of this process (`VmHWM`) in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    status_bytes("VmHWM")
}

/// Resident memory of this process (`RssAnon` and `RssFile`) in bytes.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Resident {
    /// Anonymous memory: heap, stacks, packed weights.
    pub anonymous_bytes: u64,
    /// Pages of mapped files: the memory-mapped checkpoint and the binary.
    pub file_bytes: u64,
}

/// Returns the resident memory of this process by kind.
pub fn resident() -> Option<Resident> {
    Some(Resident { anonymous_bytes: status_bytes("RssAnon")?, file_bytes: status_bytes("RssFile")? })
}

/// Resets the peak resident memory to the current one, so that the next
/// [`peak_rss_bytes`] covers only what ran since. Returns false where the
/// kernel does not allow it (then the peak covers the whole process).
pub fn reset_peak_rss() -> bool {
    // Writing 5 to clear_refs resets VmHWM (Linux 4.0 and later).
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Peak resident memory of successive intervals, and of the whole process
/// across the resets that separate the intervals.
#[derive(Debug, Default)]
pub struct PeakRss {
    /// The largest peak seen before the last reset.
    earlier_peak: u64,
    /// Whether the last reset worked, so the current peak covers only the current interval.
    resettable: bool,
}

impl PeakRss {
    /// Starts an interval: from now on [`peak_rss_bytes`] covers only it.
    pub fn start_interval(&mut self) {
        self.earlier_peak = self.earlier_peak.max(peak_rss_bytes().unwrap_or(0));
        self.resettable = reset_peak_rss();
    }

    /// Reports whether the current peak covers only the current interval.
    pub fn is_per_interval(&self) -> bool {
        self.resettable
    }

    /// Returns the peak of the whole process so far.
    pub fn process_peak(&self) -> Option<u64> {
        let current = peak_rss_bytes()?;
        Some(current.max(self.earlier_peak))
    }
}

/// Returns the load averages over 1, 5 and 15 minutes (`/proc/loadavg`).
pub fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut fields = text.split_whitespace().map(|field| field.parse::<f64>().ok());
    Some([fields.next()??, fields.next()??, fields.next()??])
}

/// Returns the CPU model name from `/proc/cpuinfo` (x86) or its implementer
/// and part numbers (aarch64).
pub fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let value = |key: &str| {
        info.lines()
            .find(|line| line.split(':').next().is_some_and(|name| name.trim() == key))
            .and_then(|line| line.split_once(':'))
            .map(|(_, value)| value.trim().to_string())
    };
    value("model name").or_else(|| {
        let implementer = value("CPU implementer")?;
        let part = value("CPU part")?;
        Some(format!("implementer {implementer}, part {part}"))
    })
}

/// CPU time counters at one instant.
#[derive(Clone, Copy, Debug)]
pub struct CpuSnapshot {
    at: Instant,
    /// Ticks every CPU spent running anything (user, nice, system, irq, softirq).
    machine_busy: u64,
    /// Ticks the hypervisor ran something else while a CPU wanted to run.
    machine_steal: u64,
    /// Ticks of this process, all threads (user and system).
    own: u64,
}

/// CPU use by others during a measured interval, in CPUs (1.0 = one CPU busy all the time).
#[derive(Clone, Copy, Debug, Serialize)]
pub struct OtherCpuUse {
    /// Average CPUs used by other processes.
    pub other_cpus: f64,
    /// Average CPUs taken by the hypervisor (steal time).
    pub steal_cpus: f64,
}

impl CpuSnapshot {
    pub fn take() -> Option<CpuSnapshot> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let line = stat.lines().find(|line| line.starts_with("cpu "))?;
        let ticks: Vec<u64> = line.split_whitespace().skip(1).map(|field| field.parse().unwrap_or(0)).collect();
        // user nice system idle iowait irq softirq steal (guest time is inside user).
        let field = |index: usize| ticks.get(index).copied().unwrap_or(0);
        let machine_busy = field(0) + field(1) + field(2) + field(5) + field(6);
        let machine_steal = field(7);
        let own = own_cpu_ticks()?;
        Some(CpuSnapshot { at: Instant::now(), machine_busy, machine_steal, own })
    }

    /// Returns the CPU use of other processes between `self` and `later`.
    pub fn others_until(&self, later: &CpuSnapshot) -> OtherCpuUse {
        let seconds = later.at.duration_since(self.at).as_secs_f64().max(1e-3);
        let busy = later.machine_busy.saturating_sub(self.machine_busy);
        let own = later.own.saturating_sub(self.own);
        let steal = later.machine_steal.saturating_sub(self.machine_steal);
        OtherCpuUse {
            other_cpus: busy.saturating_sub(own) as f64 / USER_HZ / seconds,
            steal_cpus: steal as f64 / USER_HZ / seconds,
        }
    }
}

/// Returns the user plus system ticks of this process from `/proc/self/stat`.
fn own_cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may contain spaces; fields after it are plain.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 (utime) and 15 (stime) of the file are 11 and 12 after the name.
    let user: u64 = fields.get(11)?.parse().ok()?;
    let system: u64 = fields.get(12)?.parse().ok()?;
    Some(user + system)
}

/// Returns why a run should not be trusted, if the machine was busy.
///
/// The load average also counts processes that ended shortly before the
/// run, so it is used only where the CPU use of other processes during the
/// run is not known.
pub fn busy_warning(load_before: Option<[f64; 3]>, others: Option<OtherCpuUse>) -> Option<String> {
    let mut reasons = Vec::new();
    if others.is_none()
        && let Some(load) = load_before.filter(|load| load[0] > BUSY_LOAD_BEFORE)
    {
        reasons.push(format!("the 1-minute load average was {:.2} before the run", load[0]));
    }
    if let Some(others) = others {
        if others.other_cpus > BUSY_OTHER_CPUS {
            reasons.push(format!("other processes used {:.2} CPUs on average during it", others.other_cpus));
        }
        if others.steal_cpus > BUSY_OTHER_CPUS {
            reasons.push(format!("the hypervisor took {:.2} CPUs on average (steal time)", others.steal_cpus));
        }
    }
    if reasons.is_empty() {
        None
    } else {
        Some(format!("the machine was busy: {}; timings are not representative", reasons.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_os = "linux")]
    fn proc_values_are_read() {
        assert!(peak_rss_bytes().unwrap() >= 1024);
        assert!(resident().unwrap().anonymous_bytes >= 1024);
        assert!(load_average().is_some());
        assert!(CpuSnapshot::take().is_some());
    }

    #[test]
    fn busy_runs_are_flagged() {
        let quiet = OtherCpuUse { other_cpus: 0.01, steal_cpus: 0.0 };
        assert_eq!(busy_warning(Some([0.1, 0.2, 0.3]), Some(quiet)), None);
        assert_eq!(busy_warning(Some([1.7, 0.2, 0.3]), Some(quiet)), None);
        let warning = busy_warning(Some([1.7, 0.2, 0.3]), None).unwrap();
        assert!(warning.contains("1.70"), "{warning}");
        let loaded = OtherCpuUse { other_cpus: 0.9, steal_cpus: 0.0 };
        assert!(busy_warning(None, Some(loaded)).unwrap().contains("0.90 CPUs"));
    }
}
