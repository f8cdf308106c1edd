//! The default live-process budget, sized from the memory this gateway may use: the machine's
//! RAM, or its cgroup's limit when one is set (a container, a Kubernetes pod).
//!
//! It only reads numbers and computes. It does not watch memory at run time, and it is used only
//! when `max_live_processes` is not configured.

use std::path::Path;

/// What one live CLI process is counted at. A warm CLI measured about 124 MB PSS (148 MB RSS),
/// one that served long turns about 150 MB PSS (216 MB RSS) (bench/RESULTS.md, figure 11): it
/// is mostly the runtime and the bundled code. This leaves room for longer histories.
pub const PER_PROCESS_BYTES: u64 = 256 << 20;

/// The share of memory the CLI processes may fill: the rest is for the gateway, the kernel, the
/// page cache the transcripts and the store live in, and whatever else runs beside it.
const SHARE_NUM: u64 = 1;
const SHARE_DEN: u64 = 2;

/// Bounds on the computed budget. Below 2 a follow-up would evict the warm process it needs;
/// above 64 the CPU, not memory, limits a normal machine, and a bigger budget is a deliberate
/// choice to write in the config.
pub const MIN: usize = 2;
pub const MAX: usize = 64;

/// The budget for `memory` bytes: half of it in [`PER_PROCESS_BYTES`] units, within
/// [`MIN`]..=[`MAX`].
pub fn for_memory(memory: u64) -> usize {
    let n = memory / SHARE_DEN * SHARE_NUM / PER_PROCESS_BYTES;
    (n as usize).clamp(MIN, MAX)
}

/// The budget for this machine, or `fallback` when its memory cannot be read.
pub fn for_this_machine(fallback: usize) -> usize {
    usable_memory().map(for_memory).unwrap_or(fallback)
}

/// The memory this process may use: the smaller of the machine's RAM and the cgroup's limit.
pub fn usable_memory() -> Option<u64> {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| mem_total(&s));
    let limit = cgroup_limit(Path::new("/sys/fs/cgroup"));
    match (total, limit) {
        (Some(t), Some(l)) => Some(t.min(l)),
        (t, l) => t.or(l),
    }
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The memory limit of this process's cgroup, when it is a number: v2's `memory.max` or v1's
/// `memory.limit_in_bytes` (`max`, and v1's huge "no limit" value, mean none).
fn cgroup_limit(root: &Path) -> Option<u64> {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    limit_files(root, &own)
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .and_then(|s| parse_limit(&s))
}

/// Where the limit may be written, nearest first, for a `/proc/self/cgroup` text.
fn limit_files(root: &Path, own: &str) -> Vec<std::path::PathBuf> {
    let rel = |p: &str| p.trim_start_matches('/').to_string();
    let mut files = vec![];
    for line in own.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next(), parts.next());
        match (controllers, path) {
            (Some(""), Some(p)) => files.push(root.join(rel(p)).join("memory.max")),
            (Some(c), Some(p)) if c.split(',').any(|c| c == "memory") => files.push(
                root.join("memory")
                    .join(rel(p))
                    .join("memory.limit_in_bytes"),
            ),
            _ => {}
        }
    }
    files.push(root.join("memory.max"));
    files
}

fn parse_limit(s: &str) -> Option<u64> {
    let v: u64 = s.trim().parse().ok()?;
    // cgroup v1 says "no limit" with a number near i64::MAX.
    (v < (1u64 << 60)).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    #[test]
    fn half_the_memory_in_process_units_within_bounds() {
        assert_eq!(
            for_memory(GIB),
            MIN,
            "a small machine still gets the minimum"
        );
        assert_eq!(for_memory(4 * GIB), 8);
        assert_eq!(for_memory(24 * GIB), 48);
        assert_eq!(for_memory(512 * GIB), MAX);
    }

    #[test]
    fn meminfo_and_cgroup_values_parse() {
        let meminfo = "MemTotal:       24576000 kB\nMemFree:  1 kB\n";
        assert_eq!(mem_total(meminfo), Some(24576000 * 1024));
        assert_eq!(mem_total("nothing"), None);
        assert_eq!(parse_limit("2147483648\n"), Some(2 * GIB));
        assert_eq!(parse_limit("max\n"), None);
        assert_eq!(
            parse_limit("9223372036854771712"),
            None,
            "v1's no-limit value"
        );
    }

    #[test]
    fn both_cgroup_versions_name_their_limit_file() {
        let root = Path::new("/cg");
        let own = "4:memory:/pods/a\n3:cpu:/\n0::/slice/b\n";
        let files = limit_files(root, own);
        assert_eq!(
            files,
            vec![
                root.join("memory/pods/a/memory.limit_in_bytes"),
                root.join("slice/b/memory.max"),
                root.join("memory.max"),
            ]
        );
    }

    #[test]
    fn a_cgroup_limit_is_read_from_the_tree() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("memory.max"), "1073741824\n").unwrap();
        // Whatever this process's own cgroup path is, the root's file is a fallback.
        let got = cgroup_limit(dir.path());
        assert_eq!(got, Some(GIB));
    }
}
