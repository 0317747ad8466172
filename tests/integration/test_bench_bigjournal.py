#!/usr/bin/python3
"""The big-journal benchmark's smoke run: tests/bench/run_bigjournal.py
with a journal of 5,000 certificates more and one short run against each
signer. The fill must leave the signer starting and issuing (the script
checks the rows are there), and the figures must be printed."""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import tap  # noqa: E402

SRC = os.environ.get("SF_SOURCE_ROOT") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))


def main():
    p = subprocess.run(["/usr/bin/python3",
                        os.path.join(SRC, "tests", "bench", "run_bigjournal.py"),
                        "--rows", "5000", "--runs", "1", "--seconds", "1", "--pool", "64"],
                       capture_output=True, text=True, timeout=600)
    m = re.search(r"^result (.*)$", p.stdout, re.M)
    tap.ok(p.returncode == 0 and m is not None,
           "run_bigjournal.py: journal filled with 5,000 certificates, both signers issue",
           p.stdout + p.stderr)
    res = dict(kv.split("=", 1) for kv in m.group(1).split()) if m else {}
    tap.ok(res.get("rows") == "5000" and float(res.get("filled_rate", 0)) > 0
           and float(res.get("empty_rate", 0)) > 0 and float(res.get("ratio", 0)) > 0,
           "certs/s of both signers and their ratio printed", str(res))
    tap.ok(int(res.get("filled_cpu_us", 0)) > 0 and int(res.get("journal_mb", 0)) > 0,
           "the signer's CPU per certificate and the journal's size printed", str(res))
    tap.done()


if __name__ == "__main__":
    main()
