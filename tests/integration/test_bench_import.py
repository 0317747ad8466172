#!/usr/bin/python3
"""The import benchmark's smoke run: tests/bench/run_import.py on a few
hundred generated records (P-256 and RSA-2048), in batches small enough
that the CLI's reader thread and its sender take turns several times.
It must import every record and print its figures."""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import tap  # noqa: E402

SRC = os.environ.get("SF_SOURCE_ROOT") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))


def main():
    p = subprocess.run(["/usr/bin/python3", os.path.join(SRC, "tests", "bench", "run_import.py"),
                        "--records", "700", "--rsa-percent", "20", "--batch", "150"],
                       capture_output=True, text=True, timeout=600)
    m = re.search(r"^result (.*)$", p.stdout, re.M)
    tap.ok(p.returncode == 0 and m is not None, "run_import.py: 700 records imported",
           p.stdout + p.stderr)
    res = dict(kv.split("=", 1) for kv in m.group(1).split()) if m else {}
    tap.ok(res.get("records") == "700" and float(res.get("rate", 0)) > 0,
           "records/s printed", str(res))
    tap.ok(all(int(res.get(k, 0)) > 0 for k in ("cli_rss_kb", "signer_rss_kb", "authz_rss_kb")),
           "peak RSS of the CLI, the signer and authz printed", str(res))
    tap.done()


if __name__ == "__main__":
    main()
