#!/usr/bin/env python3
"""Runs a command and measures its whole process tree (the command and every descendant,
Chromium's zygote and renderers included) until it exits.

    measure.py [options] -- CMD ARGS...

Prints (or writes with --out) one JSON object:
  wall_s          seconds from spawn to the "done" time (see --done-cmd), else to exit
  process_wall_s  seconds from spawn to exit
  cpu_s           user+system CPU seconds of the tree at the done time (interpolated)
  cpu_total_s     user+system CPU seconds of the tree over its whole life
  peak_pss_mib    max over samples of the summed PSS (smaps_rollup) of the tree
  peak_rss_mib    max over samples of the summed RSS (counts shared pages once per process)
  cpu_by_name_s   cpu_total_s split by process name (e.g. scrapefarm vs chromium vs node)
  cpu_by_role_s   cpu_total_s split by Chromium process role (browser, renderer, gpu-process,
                  utility:network, ...; other processes by name): where the browser's CPU goes
  extra_cpu_s     CPU of the --extra-cmdline processes while the command ran (not in cpu_s)
  max_procs       most processes alive in the tree at once
  exit_code       the command's exit code (negative: killed by that signal)
  done_epoch_s    the done time, when --done-cmd gave one

How it samples: every --interval seconds it scans /proc for the tree (by parent pid) and sums
utime+stime of each process, keeping the last value seen per process (pid + start time), so
children that already exited still count (at most one interval of their CPU is lost). This
process makes itself a child subreaper, so daemonising grandchildren stay in the tree. PSS is
read every --pss-every samples (smaps_rollup walks page tables, so it is not free).

With --progress-sql, a psql session polls a count every --progress-every seconds and each such
sample (count, PSS, RSS, processes, Chromium renderers, open DevTools page targets) is written
as a JSON line to --series: that is how the long run sees memory at page 1,000 and 5,000.
"""

import argparse
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
PR_SET_CHILD_SUBREAPER = 36
MIB = 1024 * 1024


def become_subreaper():
    """Orphaned descendants are re-parented to us instead of init, so they stay in the tree."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except OSError:
        pass


def read_stat(pid):
    """(ppid, cpu ticks, start time, rss bytes, comm) of a process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    head, _, rest = raw.rpartition(")")
    comm = head.partition("(")[2]
    fields = rest.split()
    # fields[0] is field 3 (state): ppid is field 4, utime 14, stime 15, starttime 22, rss 24.
    return int(fields[1]), int(fields[11]) + int(fields[12]), fields[19], int(fields[21]) * PAGE, comm


def read_pss(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def role_of(pid, comm):
    """A Chromium process's role from its command line (`--type=`, the utility's sub-type);
    the browser process has no type. Other processes go by their name."""
    if not comm.startswith("chrom") and comm != "exe":
        return comm
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            # Chromium rewrites its title as one space-separated string.
            args = f.read().decode("utf-8", "replace").replace("\0", " ").split()
    except OSError:
        return "chromium:?"
    kind = next((a.split("=", 1)[1] for a in args if a.startswith("--type=")), "browser")
    sub = next((a.split("=", 1)[1] for a in args if a.startswith("--utility-sub-type=")), None)
    if sub:
        kind += ":" + sub.rsplit(".", 1)[-1]
    return kind


def is_renderer(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"--type=renderer" in f.read()
    except OSError:
        return False


class Tree:
    """The sampled descendants of `root` (itself not included) minus the `exclude` pids."""

    def __init__(self, root, exclude):
        self.root = root
        self.exclude = exclude
        self.cpu_ticks = {}  # (pid, starttime) -> last utime+stime seen
        self.comms = {}  # (pid, starttime) -> process name
        self.roles = {}  # (pid, starttime) -> Chromium role (see role_of), read once
        self.members = {}  # pid -> (ppid, ticks, start, rss, comm) of the latest scan
        self.extra_match = None  # cmdline substring of outside processes to account separately
        self.extra_ticks = {}  # (pid, starttime) -> (ticks at first sight, last ticks)
        self.extra_checked = set()  # processes whose command line was already looked at

    def scan(self):
        table = {}
        for name in os.listdir("/proc"):
            if name.isdigit():
                stat = read_stat(int(name))
                if stat is not None:
                    table[int(name)] = stat
        children = {}
        for pid, stat in table.items():
            children.setdefault(stat[0], []).append(pid)
        members, stack = {}, list(children.get(self.root, []))
        while stack:
            pid = stack.pop()
            if pid in table and pid not in self.exclude:
                members[pid] = table[pid]
                stack.extend(children.get(pid, []))
        for pid, (_, ticks, start, _, comm) in members.items():
            self.cpu_ticks[(pid, start)] = ticks
            self.comms[(pid, start)] = comm
            # A fork shows its parent's command line (or name) until it execs or sets its
            # title: read it again until it names a role.
            if self.roles.get((pid, start), "browser") in ("browser", "exe", "zygote"):
                self.roles[(pid, start)] = role_of(pid, comm)
        self.members = members
        if self.extra_match:
            self.scan_extra(table)

    def scan_extra(self, table):
        """Processes outside the tree whose command line names `extra_match` (e.g. the PostgreSQL
        backends serving the run's database): only the CPU they use while we watch counts."""
        needle = self.extra_match.encode()
        for pid, (_, ticks, start, _, _) in table.items():
            key = (pid, start)
            if pid == self.root or pid in self.members or pid in self.exclude:
                continue
            if key in self.extra_ticks:
                self.extra_ticks[key] = (self.extra_ticks[key][0], ticks)
            elif key not in self.extra_checked:
                self.extra_checked.add(key)
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        if needle in f.read():
                            self.extra_ticks[key] = (ticks, ticks)
                except OSError:
                    pass

    def extra_cpu_s(self):
        return sum(last - first for first, last in self.extra_ticks.values()) / CLK_TCK

    def cpu_split(self, labels):
        """CPU seconds summed by label (`labels`: (pid, starttime) -> label), largest first."""
        out = {}
        for key, ticks in self.cpu_ticks.items():
            label = labels.get(key, "?")
            out[label] = out.get(label, 0) + ticks / CLK_TCK
        return {k: round(v, 2) for k, v in sorted(out.items(), key=lambda kv: -kv[1])}

    def cpu_s(self):
        return sum(self.cpu_ticks.values()) / CLK_TCK

    def rss(self):
        return sum(m[3] for m in self.members.values())

    def pss(self):
        return sum(read_pss(pid) for pid in self.members)

    def chromium_procs(self):
        return [pid for pid, m in self.members.items() if m[4].startswith("chrom")]


class Psql:
    """One long-lived psql session answering a scalar query (no process spawn per poll)."""

    def __init__(self, url):
        self.proc = subprocess.Popen(
            ["psql", "-X", "-A", "-t", "-q", url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )

    def scalar(self, sql):
        self.proc.stdin.write(sql.rstrip(";") + ";\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline().strip()
        try:
            return int(line)
        except ValueError:
            return None

    def close(self):
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()


def devtools_pages(profile_dir):
    """Open page targets of the Chromium whose profile is `profile_dir`, via /json/list."""
    try:
        with open(os.path.join(profile_dir, "DevToolsActivePort")) as f:
            port = int(f.readline().strip())
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2) as r:
            return sum(1 for t in json.load(r) if t.get("type") == "page")
    except (OSError, ValueError):
        return None


def run_done_cmd(cmd):
    """Epoch seconds printed (as seconds or milliseconds) by `cmd`, or None."""
    try:
        out = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=60).stdout
        value = float(out.strip().splitlines()[-1])
    except (subprocess.SubprocessError, ValueError, IndexError):
        return None
    return value / 1000.0 if value > 1e11 else value


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--interval", type=float, default=0.1, help="seconds between CPU/RSS samples")
    p.add_argument("--pss-every", type=int, default=5, help="read PSS every N samples")
    p.add_argument("--done-cmd", help="shell command run after exit that prints the done time (epoch s or ms)")
    p.add_argument("--progress-sql", nargs=2, metavar=("DB_URL", "SQL"), help="count polled during the run")
    p.add_argument("--progress-every", type=float, default=1.0)
    p.add_argument("--devtools-profile", help="profile dir whose DevToolsActivePort to ask for open tabs")
    p.add_argument("--series", help="write progress samples here as JSON lines")
    p.add_argument("--extra-cmdline", help="also account (separately) CPU of outside processes whose "
                   "command line contains this, e.g. the PostgreSQL backends of the run's database")
    p.add_argument("--timeout", type=float, default=3600, help="kill the tree after this many seconds")
    p.add_argument("--out", help="write the result JSON here instead of stdout")
    p.add_argument("cmd", nargs=argparse.REMAINDER)
    args = p.parse_args()
    if args.cmd and args.cmd[0] == "--":
        args.cmd = args.cmd[1:]
    if not args.cmd:
        p.error("no command given (measure.py [options] -- CMD ARGS...)")
    return args


def kill_tree(tree, sig):
    for pid in list(tree.members):
        try:
            os.kill(pid, sig)
        except OSError:
            pass


class Progress:
    """Progress samples: count from psql, memory and browser state of the tree."""

    def __init__(self, args, started):
        self.args, self.started = args, started
        self.psql = Psql(args.progress_sql[0]) if args.progress_sql else None
        self.pids = {self.psql.proc.pid} if self.psql else set()
        self.out = open(args.series, "w") if args.series else None
        self.next_at = started

    def maybe_sample(self, tree, now):
        if self.psql is None or now < self.next_at:
            return
        self.next_at = now + self.args.progress_every
        chromium = tree.chromium_procs()
        row = {
            "t_s": round(now - self.started, 2),
            "count": self.psql.scalar(self.args.progress_sql[1]),
            "pss_mib": round(tree.pss() / MIB, 1),
            "rss_mib": round(tree.rss() / MIB, 1),
            "cpu_s": round(tree.cpu_s(), 2),
            "procs": len(tree.members),
            "chromium_procs": len(chromium),
            "renderers": sum(1 for pid in chromium if is_renderer(pid)),
        }
        if self.args.devtools_profile:
            row["tabs"] = devtools_pages(self.args.devtools_profile)
        if self.out:
            self.out.write(json.dumps(row) + "\n")
            self.out.flush()

    def close(self):
        if self.psql:
            self.psql.close()
        if self.out:
            self.out.close()


def reap_orphans(tree, command_pid):
    """Reaps exited orphans re-parented to us (after their CPU was read by the scan), so a
    retired browser's helpers are not counted as live processes for the rest of the run."""
    for pid, stat in list(tree.members.items()):
        if stat[0] != tree.root or pid == command_pid:
            continue
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                state = f.read().rpartition(b")")[2].split()[0]
        except (OSError, IndexError):
            continue
        if state == b"Z":
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


def sample_loop(args, proc, tree, started):
    """Samples until the command exits; returns (cpu timeline, peak pss, peak rss, max procs)."""
    timeline, peak_pss, peak_rss, max_procs, n = [], 0, 0, 0, 0
    progress = Progress(args, started)
    tree.exclude |= progress.pids
    try:
        while True:
            now = time.time()
            tree.scan()
            reap_orphans(tree, proc.pid)
            timeline.append((now, tree.cpu_s()))
            peak_rss = max(peak_rss, tree.rss())
            max_procs = max(max_procs, len(tree.members))
            if n % args.pss_every == 0:
                peak_pss = max(peak_pss, tree.pss())
            progress.maybe_sample(tree, now)
            n += 1
            if proc.poll() is not None:
                break
            if now - started > args.timeout:
                kill_tree(tree, signal.SIGKILL)
            time.sleep(max(0.0, args.interval - (time.time() - now)))
    finally:
        progress.close()
    return timeline, peak_pss, peak_rss, max_procs


def cpu_at(timeline, t):
    """CPU seconds of the tree at epoch `t`, interpolated between the samples around it."""
    before = [s for s in timeline if s[0] <= t]
    after = [s for s in timeline if s[0] > t]
    if not before:
        return 0.0
    if not after:
        return before[-1][1]
    (t0, c0), (t1, c1) = before[-1], after[0]
    return c0 + (c1 - c0) * (t - t0) / (t1 - t0)


def main():
    args = parse_args()
    become_subreaper()
    started = time.time()
    proc = subprocess.Popen(args.cmd)
    # Rooted at this process: the command, and its orphans re-parented to us, are the tree.
    tree = Tree(os.getpid(), exclude=set())
    tree.extra_match = args.extra_cmdline
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda s, _f: proc.send_signal(s))
    timeline, peak_pss, peak_rss, max_procs = sample_loop(args, proc, tree, started)
    ended = time.time()
    # Reap re-parented orphans (we are their subreaper) so none is left behind as a zombie.
    tree.scan()
    kill_tree(tree, signal.SIGKILL)
    deadline = time.time() + 5
    while time.time() < deadline:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                time.sleep(0.05)
        except ChildProcessError:
            break
    done = run_done_cmd(args.done_cmd) if args.done_cmd else None
    done_at = done if done is not None and started < done <= ended + 1 else ended
    result = {
        "wall_s": round(done_at - started, 3),
        "process_wall_s": round(ended - started, 3),
        "cpu_s": round(cpu_at(timeline, done_at), 2),
        "cpu_total_s": round(timeline[-1][1] if timeline else 0.0, 2),
        "peak_pss_mib": round(peak_pss / MIB, 1),
        "peak_rss_mib": round(peak_rss / MIB, 1),
        "max_procs": max_procs,
        "cpu_by_name_s": tree.cpu_split(tree.comms),
        "cpu_by_role_s": tree.cpu_split(tree.roles),
        "extra_cpu_s": round(tree.extra_cpu_s(), 2) if args.extra_cmdline else None,
        "exit_code": proc.returncode,
        "done_epoch_s": done,
    }
    text = json.dumps(result)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    else:
        print(text)
    return 0 if proc.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
