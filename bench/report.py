#!/usr/bin/env python3
"""Turns the benchmark's raw measurements into result rows and tables (used by scripts/bench.sh).

    report.py field FILE KEY                 print KEY of the last JSON line of FILE
    report.py record --contender farm --concurrency 4 --measure m.json [--stored N]
                     [--expected N] [--program-json out.json] [--worker-log worker.log]
                     [--load 1.23]           print one result row (JSON) for results.jsonl
    report.py table results.jsonl [--title T] [--meta K=V ...]
                                             print the Markdown table (contender x concurrency)
    report.py long series.jsonl measure.json [--at 1000 --end 5000]
                                             print the long run's memory at page 1,000 vs the end
"""

import argparse
import json
import re
import statistics
import sys

CONTENDERS = [
    ("farm", "farm (scrapefarm worker)"),
    ("limit", "limit (bare_loop)"),
    ("shell-limit", "bare_loop on the headless shell"),
    ("crawlee", "Crawlee PlaywrightCrawler"),
]


def last_json(path):
    with open(path) as f:
        lines = [l for l in f.read().splitlines() if l.strip().startswith("{")]
    return json.loads(lines[-1]) if lines else {}


def stage_times(log_path):
    """The worker's 'stage time per delivery (ms):  render 12.3  classify …' line, as a dict."""
    try:
        with open(log_path, errors="replace") as f:
            text = f.read()
    except OSError:
        return {}
    match = re.search(r"stage time per delivery \(ms\):(.*)", text)
    if not match:
        return {}
    return {k: float(v) for k, v in re.findall(r"([a-z]+) ([0-9.]+)", match.group(1))}


def cmd_field(args):
    value = last_json(args.file).get(args.key)
    print("" if value is None else value)


def cmd_record(args):
    m = last_json(args.measure)
    program = last_json(args.program_json) if args.program_json else {}
    stored = args.stored if args.stored is not None else program.get("pages", 0) - program.get("errors", 0)
    wall = m.get("wall_s") or 0.0
    row = {
        "contender": args.contender,
        "concurrency": args.concurrency,
        "stored": stored,
        "expected": args.expected,
        "wall_s": wall,
        "pages_per_s": round(stored / wall, 3) if wall else 0.0,
        "cpu_s": m.get("cpu_s"),
        "cpu_per_page_s": round(m["cpu_s"] / stored, 4) if stored and m.get("cpu_s") is not None else None,
        "cpu_total_s": m.get("cpu_total_s"),
        "peak_pss_mib": m.get("peak_pss_mib"),
        "peak_rss_mib": m.get("peak_rss_mib"),
        "max_procs": m.get("max_procs"),
        "db_cpu_s": m.get("extra_cpu_s"),
        "cpu_by_name_s": m.get("cpu_by_name_s"),
        "cpu_by_role_s": m.get("cpu_by_role_s"),
        "process_wall_s": m.get("process_wall_s"),
        "exit_code": m.get("exit_code"),
        "load1": args.load,
    }
    if args.worker_log:
        row["stages_ms"] = stage_times(args.worker_log)
    print(json.dumps(row))


def fmt(value, digits=2):
    return "—" if value is None else f"{value:.{digits}f}"


def ratio(a, b):
    return f"{a / b:.2f}×" if a and b else "—"


def median_rows(rows):
    """One row per (contender, concurrency): the run with the median pages/s, and the range."""
    groups = {}
    for r in rows:
        groups.setdefault((r["contender"], r["concurrency"]), []).append(r)
    by = {}
    for key, runs in groups.items():
        runs = sorted(runs, key=lambda r: r["pages_per_s"] or 0)
        chosen = dict(runs[(len(runs) - 1) // 2])
        chosen["runs"] = len(runs)
        chosen["pps_range"] = (runs[0]["pages_per_s"], runs[-1]["pages_per_s"])
        by[key] = chosen
    return by


def table_rows(rows):
    by = median_rows(rows)
    levels = sorted({c for _, c in by})
    repeated = any(r["runs"] > 1 for r in by.values())
    out = [
        "| contender | C | stored | wall s | pages/s" + (" (min–max)" if repeated else "")
        + " | CPU s (tree) | CPU ms/page | DB CPU s | peak PSS MiB | peak RSS MiB | load1 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in levels:
        for key, name in CONTENDERS:
            r = by.get((key, c))
            if r is None:
                continue
            stored = f"{r['stored']}/{r['expected']}" if r.get("expected") else str(r["stored"])
            cpu_ms = r["cpu_per_page_s"] * 1000 if r.get("cpu_per_page_s") is not None else None
            pps = fmt(r["pages_per_s"])
            if repeated:
                pps += f" ({fmt(r['pps_range'][0])}–{fmt(r['pps_range'][1])})"
            out.append(
                f"| {name} | {c} | {stored} | {fmt(r['wall_s'])} | {pps} | {fmt(r['cpu_s'], 1)} "
                f"| {fmt(cpu_ms, 0)} | {fmt(r.get('db_cpu_s'), 1)} | {fmt(r['peak_pss_mib'], 0)} "
                f"| {fmt(r['peak_rss_mib'], 0)} | {fmt(r.get('load1'))} |"
            )
    return by, levels, out


def ratio_rows(by, levels):
    out = [
        "",
        "| C | pages/s farm÷limit | pages/s farm÷Crawlee | CPU/page farm÷limit | CPU/page farm÷Crawlee | PSS farm÷Crawlee | CPU/page farm÷shell loop |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in levels:
        f, l, k = by.get(("farm", c), {}), by.get(("limit", c), {}), by.get(("crawlee", c), {})
        sh = by.get(("shell-limit", c), {})
        out.append(
            f"| {c} | {ratio(f.get('pages_per_s'), l.get('pages_per_s'))} | {ratio(f.get('pages_per_s'), k.get('pages_per_s'))} "
            f"| {ratio(f.get('cpu_per_page_s'), l.get('cpu_per_page_s'))} | {ratio(f.get('cpu_per_page_s'), k.get('cpu_per_page_s'))} "
            f"| {ratio(f.get('peak_pss_mib'), k.get('peak_pss_mib'))} | {ratio(f.get('cpu_per_page_s'), sh.get('cpu_per_page_s'))} |"
        )
    return out


def stage_rows(by, levels):
    farm = [(c, by[("farm", c)].get("stages_ms") or {}) for c in levels if ("farm", c) in by]
    names = sorted({k for _, s in farm for k in s}, key=["render", "classify", "extract", "snapshot", "store", "ack"].index)
    if not names:
        return []
    out = ["", "Farm stage time per delivery (ms, summed over concurrent deliveries):", "",
           "| C | " + " | ".join(names) + " |", "|---:|" + "---:|" * len(names)]
    for c, s in farm:
        out.append(f"| {c} | " + " | ".join(fmt(s.get(n), 1) for n in names) + " |")
    return out


def cpu_split_rows(by, levels):
    out = ["", "CPU s by process (whole run, start-up and shutdown included; Chromium by role):", ""]
    for c in levels:
        for key, name in CONTENDERS:
            row = by.get((key, c)) or {}
            split = row.get("cpu_by_role_s") or row.get("cpu_by_name_s") or {}
            if split:
                top = ", ".join(f"{k} {v:.1f}" for k, v in list(split.items())[:6])
                out.append(f"- C={c} {name}: {top}")
    return out if len(out) > 3 else []


def cmd_table(args):
    with open(args.results) as f:
        rows = [json.loads(l) for l in f if l.strip()]
    by, levels, out = table_rows(rows)
    lines = [f"### {args.title}", ""] if args.title else []
    lines += [f"- {m}" for m in args.meta]
    lines += ["- DB CPU: PostgreSQL backends serving the farm's database (not in its tree CPU); "
              "with --repeat, the run with the median pages/s is shown.", ""]
    lines += out + ratio_rows(by, levels) + stage_rows(by, levels) + cpu_split_rows(by, levels)
    print("\n".join(lines))


def window(series, lo, hi):
    rows = [r for r in series if r.get("count") is not None and lo <= r["count"] < hi]
    return rows


def describe(rows):
    if not rows:
        return None
    return {
        "pss_mib": round(statistics.median(r["pss_mib"] for r in rows), 1),
        "rss_mib": round(statistics.median(r["rss_mib"] for r in rows), 1),
        "chromium_procs": max(r["chromium_procs"] for r in rows),
        "renderers": max(r["renderers"] for r in rows),
        "tabs": max((r.get("tabs") or 0) for r in rows),
        "samples": len(rows),
    }


def cmd_long(args):
    with open(args.series) as f:
        series = [json.loads(l) for l in f if l.strip()]
    m = last_json(args.measure)
    final = max((r["count"] or 0) for r in series) if series else 0
    # Samples after the last listing was stored show the idle wait and shutdown: not the run.
    first_final = next((i for i, r in enumerate(series) if (r["count"] or 0) >= final), len(series))
    series = series[:first_final]
    span = max(args.at // 10, 50)
    at = describe(window(series, args.at, args.at + span))
    end = describe(window(series, args.end - span, args.end + 1))
    lines = [
        f"### Long run: {final} pages through one farm worker (C={args.concurrency})",
        "",
        f"- wall {fmt(m.get('wall_s'))} s, {fmt(final / m['wall_s'] if m.get('wall_s') else None)} pages/s, "
        f"CPU {fmt(m.get('cpu_s'), 1)} s, peak PSS {fmt(m.get('peak_pss_mib'), 0)} MiB",
        "",
        "| at pages | samples | tree PSS MiB (median) | tree RSS MiB (median) | Chromium processes | renderers | open tabs |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, d in ((f"{args.at}–{args.at + span}", at), (f"{args.end - span}–{args.end}", end)):
        if d:
            lines.append(f"| {label} | {d['samples']} | {d['pss_mib']} | {d['rss_mib']} | {d['chromium_procs']} | {d['renderers']} | {d['tabs']} |")
    if at and end:
        growth = (end["pss_mib"] - at["pss_mib"]) / at["pss_mib"] * 100
        verdict = "within" if abs(growth) <= 10 else "NOT within"
        lines += ["", f"PSS growth from page {args.at} to page {args.end}: {growth:+.1f}% ({verdict} the 10% target)."]
    # A browser is replaced every N pages (sawtooth memory), so two points compare a fresh
    # browser with an old one depending on the phase: per window of `--at` pages, compare the
    # whole windows too.
    windows = []
    for lo in range(0, final, args.at):
        rows = window(series, lo, lo + args.at)
        if rows:
            pss = [r["pss_mib"] for r in rows]
            windows.append((lo, statistics.median(pss), max(pss), describe(rows)))
    if len(windows) >= 2:
        lines += ["", f"| pages | tree PSS MiB (median) | tree PSS MiB (max) | Chromium processes (max) | open tabs (max) |",
                  "|---|---:|---:|---:|---:|"]
        for lo, med, top, d in windows:
            lines.append(f"| {lo}–{lo + args.at} | {med:.1f} | {top:.1f} | {d['chromium_procs']} | {d['tabs']} |")
        (_, med0, top0, _), (_, med1, top1, _) = windows[0], windows[-1]
        lines += ["", f"Last window vs first: median PSS {(med1 - med0) / med0 * 100:+.1f}%, "
                      f"max PSS {(top1 - top0) / top0 * 100:+.1f}%."]
    print("\n".join(lines))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("field")
    f.add_argument("file")
    f.add_argument("key")
    r = sub.add_parser("record")
    r.add_argument("--contender", required=True, choices=[c for c, _ in CONTENDERS])
    r.add_argument("--concurrency", type=int, required=True)
    r.add_argument("--measure", required=True)
    r.add_argument("--stored", type=int)
    r.add_argument("--expected", type=int)
    r.add_argument("--program-json")
    r.add_argument("--worker-log")
    r.add_argument("--load", type=float)
    t = sub.add_parser("table")
    t.add_argument("results")
    t.add_argument("--title")
    t.add_argument("--meta", action="append", default=[])
    l = sub.add_parser("long")
    l.add_argument("series")
    l.add_argument("measure")
    l.add_argument("--at", type=int, default=1000)
    l.add_argument("--end", type=int, default=5000)
    l.add_argument("--concurrency", type=int, default=4)
    args = p.parse_args()
    {"field": cmd_field, "record": cmd_record, "table": cmd_table, "long": cmd_long}[args.cmd](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
