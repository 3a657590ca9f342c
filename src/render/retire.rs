//! Browser retirement: when a browser has rendered enough pages, or its process tree holds too
//! much memory, it is closed and a fresh one launched on the same profile (Chromium's memory grows
//! with every page it has seen, in caches, the renderer heap and the GPU process, no matter how
//! carefully tabs are reset). This module owns the policy and the memory reading; the CDP
//! renderer drains its tabs and relaunches.

use std::collections::HashMap;

/// When a browser is replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retirement {
    /// Pages one browser renders before it is replaced; 0 = never.
    pub max_pages: u64,
    /// Memory (PSS of the browser's whole process tree, MiB) above which it is replaced; 0 = never.
    pub max_memory_mib: u64,
}

impl Default for Retirement {
    /// Measured on the fixture at concurrency 4 (headless shell, renderer garbage-collected every
    /// 100 pages, see `cdp::purge_memory`): one browser for 5,000 pages went from a median
    /// tree PSS of 337 MiB over its first 1,000 pages to 376 MiB over its last 1,000, a creep of
    /// ~9 MiB per 1,000 pages once warm. So a browser lives 10,000 pages (one ~1 s relaunch per
    /// ~12 minutes at full speed) and the memory ceiling catches what grows faster: 1 GiB is
    /// well above a healthy browser with 8 tabs, so only a leak or a heavy site trips it.
    fn default() -> Self {
        Retirement {
            max_pages: 10_000,
            max_memory_mib: 1_024,
        }
    }
}

/// How often (in pages) the memory of the browser's tree is read: reading every process's
/// `smaps_rollup` costs a few milliseconds, so not on every page.
pub const MEMORY_CHECK_EVERY: u64 = 25;

/// Why a browser is being replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Pages(u64),
    Memory { mib: u64 },
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Pages(n) => write!(f, "rendered {n} pages"),
            Reason::Memory { mib } => write!(f, "process tree uses {mib} MiB"),
        }
    }
}

impl Retirement {
    /// Whether the browser that has rendered `pages` pages should be replaced; `memory_mib` is
    /// asked only on pages where the memory is checked.
    pub fn due(&self, pages: u64, memory_mib: impl FnOnce() -> Option<u64>) -> Option<Reason> {
        if self.max_pages > 0 && pages >= self.max_pages {
            return Some(Reason::Pages(pages));
        }
        if self.max_memory_mib > 0 && pages > 0 && pages.is_multiple_of(MEMORY_CHECK_EVERY) {
            let mib = memory_mib()?;
            if mib > self.max_memory_mib {
                return Some(Reason::Memory { mib });
            }
        }
        None
    }
}

/// PSS in MiB of `root` and all its descendants (Linux `/proc`); `None` where `/proc` cannot
/// be read. PSS splits shared pages between the processes sharing them, so Chromium's zygote
/// and renderers are not counted once per process as RSS would.
pub fn tree_memory_mib(root: u32) -> Option<u64> {
    let parents = process_parents()?;
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for (pid, ppid) in parents {
        children.entry(ppid).or_default().push(pid);
    }
    let mut stack = vec![root];
    let mut kib = 0;
    while let Some(pid) = stack.pop() {
        kib += process_pss_kib(pid).unwrap_or(0);
        stack.extend(children.get(&pid).into_iter().flatten());
    }
    Some(kib / 1024)
}

/// (pid, parent pid) of every process.
fn process_parents() -> Option<Vec<(u32, u32)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        if let Ok(stat) = std::fs::read_to_string(entry.path().join("stat"))
            && let Some(ppid) = parent_of(&stat)
        {
            out.push((pid, ppid));
        }
    }
    Some(out)
}

/// The parent pid from `/proc/<pid>/stat` (field 4; the command name in field 2 may hold spaces
/// and parentheses, so fields are counted from the last `)`).
fn parent_of(stat: &str) -> Option<u32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

fn process_pss_kib(pid: u32) -> Option<u64> {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    rollup
        .lines()
        .find_map(|line| line.strip_prefix("Pss:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_limit_retires_without_reading_memory() {
        let policy = Retirement {
            max_pages: 100,
            max_memory_mib: 500,
        };
        assert_eq!(policy.due(99, || panic!("not a check page")), None);
        assert_eq!(
            policy.due(100, || panic!("page limit first")),
            Some(Reason::Pages(100))
        );
    }

    #[test]
    fn memory_is_read_every_few_pages_and_retires_above_the_ceiling() {
        let policy = Retirement {
            max_pages: 0,
            max_memory_mib: 500,
        };
        assert_eq!(
            policy.due(MEMORY_CHECK_EVERY + 1, || panic!("not read")),
            None
        );
        assert_eq!(policy.due(MEMORY_CHECK_EVERY, || Some(500)), None);
        assert_eq!(
            policy.due(2 * MEMORY_CHECK_EVERY, || Some(501)),
            Some(Reason::Memory { mib: 501 })
        );
        assert_eq!(policy.due(MEMORY_CHECK_EVERY, || None), None);
    }

    #[test]
    fn zero_limits_never_retire() {
        let policy = Retirement {
            max_pages: 0,
            max_memory_mib: 0,
        };
        assert_eq!(policy.due(1_000_000, || Some(u64::MAX)), None);
    }

    #[test]
    fn parent_pid_is_read_past_a_command_name_with_spaces_and_parentheses() {
        assert_eq!(
            parent_of("1234 (a (weird) name) S 42 1234 1234 0"),
            Some(42)
        );
        assert_eq!(parent_of("garbage"), None);
    }

    #[test]
    fn this_process_tree_has_memory() {
        let mib = tree_memory_mib(std::process::id()).expect("/proc is readable");
        assert!(mib > 0, "a running test process uses memory");
    }
}
