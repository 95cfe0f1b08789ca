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
}
