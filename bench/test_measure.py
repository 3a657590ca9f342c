#!/usr/bin/env python3
"""Tests of bench/measure.py and bench/report.py against real processes (no mocks):

    python3 -m unittest bench/test_measure.py
"""

import json
import os
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
MEASURE = [sys.executable, os.path.join(HERE, "measure.py")]
REPORT = [sys.executable, os.path.join(HERE, "report.py")]

# Burns CPU for `secs` seconds of wall time.
BURN = "import time, sys\nend = time.time() + float(sys.argv[1])\nwhile time.time() < end: pass\n"


def measure(*args):
    out = subprocess.run(MEASURE + list(args), capture_output=True, text=True, check=False, timeout=60)
    return json.loads(out.stdout.strip().splitlines()[-1])


class MeasureTests(unittest.TestCase):
    def test_cpu_of_children_that_exited_before_the_command_is_counted(self):
        script = f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', {BURN!r}, '0.6'])\n"
        result = measure("--", sys.executable, "-c", script)
        # One child burned ~0.6 s of CPU and exited before its parent; a loaded machine gives it less.
        self.assertGreater(result["cpu_s"], 0.15)
        self.assertGreaterEqual(result["max_procs"], 2)
        self.assertEqual(result["exit_code"], 0)

    def test_orphaned_grandchildren_stay_in_the_tree_and_are_reaped(self):
        marker = f"orphan-{os.getpid()}-{time.time()}"
        # The shell backgrounds a burner and exits at once: the burner is re-parented to measure.py.
        script = f"{sys.executable} -c '{BURN}' 1.0 {marker} &"
        result = measure("--", "sh", "-c", script)
        self.assertEqual(result["exit_code"], 0)
        left = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout.strip()
        self.assertEqual(left, "", "the orphan must not outlive the measurement")

    def test_done_command_sets_the_wall_time_and_cpu_is_cut_there(self):
        with tempfile.TemporaryDirectory() as tmp:
            stamp = os.path.join(tmp, "done")
            script = f"{BURN}\nopen({stamp!r}, 'w').write(str(time.time()))\ntime.sleep(1.0)\n"
            result = measure("--done-cmd", f"cat {stamp}", "--", sys.executable, "-c", script, "0.5")
        self.assertLess(result["wall_s"], result["process_wall_s"] - 0.5)
        self.assertLessEqual(result["cpu_s"], result["cpu_total_s"])
        self.assertTrue(any(name.startswith("python") for name in result["cpu_by_name_s"]))

    def test_memory_of_the_tree_is_reported(self):
        script = "x = bytearray(64 * 1024 * 1024)\nimport time; time.sleep(1.0)\n"
        result = measure("--pss-every", "1", "--", sys.executable, "-c", script)
        self.assertGreater(result["peak_rss_mib"], 60)
        self.assertGreater(result["peak_pss_mib"], 60)


class ReportTests(unittest.TestCase):
    def test_table_shows_the_median_run_and_the_ratios(self):
        rows = []
        for contender, pps in (("farm", 10.0), ("farm", 12.0), ("farm", 30.0), ("limit", 11.0), ("crawlee", 3.0)):
            rows.append({"contender": contender, "concurrency": 4, "stored": 200, "expected": 200,
                         "wall_s": 200 / pps, "pages_per_s": pps, "cpu_s": 20.0, "cpu_per_page_s": 0.1,
                         "peak_pss_mib": 400.0, "peak_rss_mib": 1000.0, "load1": 1.0})
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
            f.write("\n".join(json.dumps(r) for r in rows))
        try:
            out = subprocess.run(REPORT + ["table", f.name], capture_output=True, text=True, check=True).stdout
        finally:
            os.unlink(f.name)
        self.assertIn("12.00 (10.00–30.00)", out)
        self.assertIn("| 4 | 1.09× | 4.00× |", out)


if __name__ == "__main__":
    unittest.main()
