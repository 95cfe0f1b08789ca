//! What the benchmarks read about a running process from `/proc`: CPU time used and peak memory.

/// User and system CPU time a process has used, in seconds, from `/proc/PID/stat` (fields 14 and
/// 15, in clock ticks of 1/100 s: `USER_HZ`, which Linux fixes at 100 for this interface); `None`
/// once the process is gone.
pub(crate) fn cpu_seconds(pid: u32) -> Option<f64> {
    stat_ticks(pid, &[11, 12])
}

/// CPU time a process and its children that it has waited for have used, in seconds
/// (`/proc/PID/stat` fields 14 to 17: utime, stime, cutime, cstime); `None` once it is gone. For
/// the apiserver stand-in this counts the commands it ran behind exec once they have ended.
pub(crate) fn cpu_seconds_with_children(pid: u32) -> Option<f64> {
    stat_ticks(pid, &[11, 12, 13, 14])
}

/// CPU time of the children this process has waited for, in seconds (`cutime` and `cstime` of
/// `/proc/self/stat`): a session's kubectl once it has been waited for.
pub(crate) fn waited_children_cpu_seconds() -> Option<f64> {
    stat_ticks(std::process::id(), &[13, 14])
}

/// The sum of `/proc/PID/stat` fields (indices counted from field 3, the one after the command
/// name) in seconds.
fn stat_ticks(pid: u32, indices: &[usize]) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces; fields 3 on follow it.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let mut ticks = 0u64;
    for &index in indices {
        ticks += fields.get(index)?.parse::<u64>().ok()?;
    }
    Some(ticks as f64 / 100.0)
}

/// The CPU seconds of all of `pids` together; `None` without any, or when one is gone.
pub(crate) fn total_cpu_seconds(pids: &[u32]) -> Option<f64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|&pid| cpu_seconds(pid)).sum()
}

/// CPU time split into user and system (kernel) time, in seconds or any other unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct CpuTime {
    /// In the process's own code and its libraries.
    pub(crate) user: f64,
    /// In the kernel on the process's behalf (system calls, the TCP stack).
    pub(crate) system: f64,
}

impl CpuTime {
    /// User and system together.
    pub(crate) fn total(self) -> f64 {
        self.user + self.system
    }

    /// Both parts scaled by `factor`.
    pub(crate) fn scaled(self, factor: f64) -> CpuTime {
        CpuTime {
            user: self.user * factor,
            system: self.system * factor,
        }
    }

    /// What was used between `before` and `self`.
    pub(crate) fn since(self, before: CpuTime) -> CpuTime {
        CpuTime {
            user: self.user - before.user,
            system: self.system - before.system,
        }
    }
}

/// The user and system CPU seconds of all of `pids` together; `None` without any, or when one is
/// gone.
pub(crate) fn cpu_times(pids: &[u32]) -> Option<CpuTime> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().try_fold(
        CpuTime {
            user: 0.0,
            system: 0.0,
        },
        |sum, &pid| {
            Some(CpuTime {
                user: sum.user + stat_ticks(pid, &[11])?,
                system: sum.system + stat_ticks(pid, &[12])?,
            })
        },
    )
}

/// The whole machine's CPU time since boot, all CPUs together, in seconds (the `cpu` line of
/// `/proc/stat`, in `USER_HZ` ticks like `/proc/PID/stat`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct MachineTime {
    /// Running anything: user, nice, system, irq and softirq time.
    pub(crate) busy: f64,
    /// Idle, waiting for I/O included.
    pub(crate) idle: f64,
    /// Taken by the hypervisor for other guests while this one had work.
    pub(crate) steal: f64,
}

impl MachineTime {
    /// What passed between `before` and `self`.
    pub(crate) fn since(self, before: MachineTime) -> MachineTime {
        MachineTime {
            busy: self.busy - before.busy,
            idle: self.idle - before.idle,
            steal: self.steal - before.steal,
        }
    }
}

/// The machine's CPU time now; `None` where `/proc/stat` cannot be read.
pub(crate) fn machine_time() -> Option<MachineTime> {
    parse_machine_time(&std::fs::read_to_string("/proc/stat").ok()?)
}

/// The `cpu` line of a `/proc/stat` text: user nice system idle iowait irq softirq steal (guest
/// time is already in user and nice).
fn parse_machine_time(stat: &str) -> Option<MachineTime> {
    let line = stat.lines().find(|line| line.starts_with("cpu "))?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|field| field.parse().ok())
        .collect::<Option<_>>()?;
    let [user, nice, system, idle, iowait, irq, softirq, steal] = ticks[..] else {
        return None;
    };
    let seconds = |ticks: u64| ticks as f64 / 100.0;
    Some(MachineTime {
        busy: seconds(user + nice + system + irq + softirq),
        idle: seconds(idle + iowait),
        steal: seconds(steal),
    })
}

/// `VmHWM` of a process: its peak resident memory, in KiB.
pub(crate) fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
}

/// KiB as `12.3 MiB`, or `-` when unknown.
pub(crate) fn mebibytes(kib: Option<u64>) -> String {
    kib.map_or_else(
        || "-".into(),
        |kib| format!("{:.1} MiB", kib as f64 / 1024.0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_used_cpu_and_memory() {
        let pid = std::process::id();
        assert!(cpu_seconds(pid).is_some_and(|seconds| seconds >= 0.0));
        assert!(peak_rss_kib(pid).is_some_and(|kib| kib > 0));
        let own = cpu_seconds(pid);
        assert!(own.is_some());
        assert!(cpu_seconds_with_children(pid) >= own);
        assert!(waited_children_cpu_seconds().is_some_and(|seconds| seconds >= 0.0));
        assert_eq!(cpu_seconds(u32::MAX), None);
        assert_eq!(mebibytes(Some(1536)), "1.5 MiB");
        assert_eq!(mebibytes(None), "-");
    }

    #[test]
    fn the_machine_line_of_proc_stat_is_split_into_busy_idle_and_steal() {
        let stat = "cpu  100 20 30 400 50 6 7 8 0 0\ncpu0 50 10 15 200 25 3 3 4 0 0\nintr 1\n";
        assert_eq!(
            parse_machine_time(stat),
            Some(MachineTime {
                busy: 1.63,
                idle: 4.5,
                steal: 0.08
            })
        );
        assert_eq!(parse_machine_time("cpu  1 2 3\n"), None);
        assert_eq!(parse_machine_time("cpu0 1 2 3 4 5 6 7 8\n"), None);
        // This machine's own counters only grow.
        let before = machine_time().expect("/proc/stat");
        let mut x = 0u64;
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_millis(50) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        assert_ne!(std::hint::black_box(x), 1);
        let used = machine_time().expect("/proc/stat").since(before);
        assert!(
            used.busy > 0.0 && used.idle >= 0.0 && used.steal >= 0.0,
            "{used:?}"
        );
    }

    #[test]
    fn cpu_times_split_what_cpu_seconds_sums() {
        // Burn some user time, so that the split has something in it.
        let mut x = 0u64;
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_millis(50) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        assert_ne!(std::hint::black_box(x), 1);
        let pid = std::process::id();
        let split = cpu_times(&[pid]).expect("own stat");
        let total = cpu_seconds(pid).expect("own stat");
        // Read one after the other: the total may have moved on by a tick or two.
        assert!(
            (split.total() - total).abs() <= 0.05,
            "{split:?} against {total}"
        );
        assert!(split.user > 0.0 && split.system >= 0.0, "{split:?}");
        assert_eq!(cpu_times(&[]), None);
        assert_eq!(cpu_times(&[pid, u32::MAX]), None);
        let later = CpuTime {
            user: 3.0,
            system: 5.0,
        };
        let earlier = CpuTime {
            user: 1.0,
            system: 1.0,
        };
        assert_eq!(
            later.since(earlier).scaled(0.5),
            CpuTime {
                user: 1.0,
                system: 2.0
            }
        );
    }
}
