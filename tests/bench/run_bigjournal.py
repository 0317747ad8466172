#!/usr/bin/python3
"""Does a journal of millions of certificates slow issuance? Signer.Issue
against a signer whose journal holds N certificates more, side by side with
a signer whose journal holds none, in the same run.

Sets up (tests/lib/sfharness.py) two signers on disk under --dir, each with
its own SoftHSM2 token and root -> widgiot -> us-east-1.widgiot, and the
same pool of P-256 bench devices registered in both. Then one of them is
stopped and its journal filled with N certificate rows of the region's
issuing CA, as years of issuance would leave them:

  - serials as the signer makes them (profile.h: 0x01, the second of
    issuance, 11 random bytes), random enrollment ids, device ids spread
    over a million devices, a 560-byte certificate each, issued over the
    year that ended 400 days ago, each valid for a year, so all expired
    35 days ago or earlier, as most rows of a CA that has renewed a fleet
    for years are (the OCSP responder keeps a response for each unexpired
    certificate: 20 M live ones would be its own benchmark, a signature
    and a row each);
  - every index of the certs table, dropped for the fill and made again
    afterwards, so that the fill takes minutes, not hours, and the
    indexes end up the size issuance would have left;
  - not filled: the audit trail (append-only: its size does not change
    what an insert costs) and the devices table (one row per device, a
    primary-key look-up).

The filled signer is started again and bench-issue (issue mode, --threads
T, --csr-pool) runs against the two signers alternately, R times S
seconds each. Prints each run, then the medians and the ratio filled /
empty for certs/s, p99 and the signer's CPU per certificate, and one line
to parse:

  result rows=N filled_rate=R empty_rate=R ratio=X filled_cpu_us=U empty_cpu_us=U
         fill_s=S journal_mb=M

  run_bigjournal.py [--rows N] [--runs R] [--seconds S] [--threads T]
                    [--pool P] [--dir DIR] [--json-out FILE] [--keep]
                    [--build DIR]

N defaults to 20,000,000 (about 21 GB of journal and 7 minutes of fill
on the 2-core VM of README's figures); the smoke test runs 20,000.
"""
import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import run_bench as RB  # noqa: E402  (parse_result, make_devices)

FILL_DEVICES = 1000000
DER_BYTES = 560
DAY = 86400
# The OCSP responder's task runs at start and then hourly (both signers),
# not during the runs.
OCSP_HOURLY = "[ocsp]\ninterval_seconds = 3600\n"


def fill(path, rows):
    """rows certificates of us-east-1.widgiot into the journal at path (its
    signer stopped). Seconds taken."""
    t0 = time.time()
    db = sqlite3.connect(path, isolation_level=None)
    ca = db.execute("SELECT id FROM cas WHERE name = 'us-east-1.widgiot'"
                    " ORDER BY generation DESC LIMIT 1").fetchone()
    if ca is None:
        raise RuntimeError("%s: no CA us-east-1.widgiot" % path)
    ddl = db.execute("SELECT type, name, sql FROM sqlite_master WHERE tbl_name = 'certs'"
                     " AND type IN ('index', 'trigger') AND sql IS NOT NULL").fetchall()
    db.execute("PRAGMA journal_mode = DELETE")
    db.execute("PRAGMA synchronous = OFF")
    db.execute("PRAGMA cache_size = -262144")
    db.execute("BEGIN")
    for kind, name, _ in ddl:
        db.execute("DROP %s %s" % (kind.upper(), name))
    now = int(time.time())
    db.execute(
        "INSERT INTO certs (ca_id, serial, subject, device_id, key_sha256, not_before,"
        " not_after, issued_at, requester, profile, enrollment_id, cert_der, status)"
        " WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
        " , t(i, at) AS (SELECT i, ? + i * ? / ? FROM n)"
        " SELECT ?, printf('01%08X', at) || hex(randomblob(11)), 'CN=fill',"
        " printf('fill-%07d', abs(random() % ?)), randomblob(32), at, at + ?, at,"
        " 'bench', 'device', lower(hex(randomblob(16))), randomblob(?), 1 FROM t",
        (rows, now - 765 * DAY, 365 * DAY, rows, ca[0], FILL_DEVICES, 365 * DAY,
         DER_BYTES))
    db.execute("COMMIT")
    for kind, name, sql in ddl:
        if kind == "index":
            db.execute(sql)
    for kind, name, sql in ddl:
        if kind == "trigger":
            db.execute(sql)
    db.execute("PRAGMA journal_mode = WAL")
    db.close()
    return time.time() - t0


def settle(pid, limit=600):
    """Wait until the process is idle (under 50 ms of CPU in a second):
    the signer's start-up tasks (the OCSP responder's first run reads the
    certificates table once, looking for unexpired certificates without a
    response) are not issuance."""
    for _ in range(limit):
        c0 = RB.proc_cpu(pid)
        time.sleep(1)
        if RB.proc_cpu(pid) - c0 < 0.05:
            return


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=20000000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pool", type=int, default=1024)
    ap.add_argument("--dir", default=os.environ.get("TMPDIR") or "/tmp")
    ap.add_argument("--json-out")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--build", default=os.environ.get("SF_BUILD_ROOT") or os.path.join(SRC, "build"))
    args = ap.parse_args()
    if args.pool % args.threads:
        ap.error("--pool must be a multiple of --threads")
    build = os.path.abspath(args.build)
    os.environ["SF_SOURCE_ROOT"] = SRC
    os.environ["SF_BUILD_ROOT"] = build
    sys.path.insert(0, os.path.join(SRC, "tests", "lib"))
    import sfharness as H
    pb = H.protos()
    bench = os.path.join(build, "tests", "bench", "bench-issue")

    top = tempfile.mkdtemp(prefix="sf-bench-bigjournal-", dir=args.dir)
    signers = {}
    try:
        pool = os.path.join(top, "pool.pem")
        recs = RB.make_devices(pb, "pool", args.pool, pool)
        for which in ("filled", "empty"):
            d = os.path.join(top, which)
            os.makedirs(d)
            sg = H.Signer(d, H.Token(os.path.join(d, "token")), device_max=1000000,
                          global_rate=10000000, global_burst=10000000,
                          device_live=1000000, log_level="warning",
                          extra=OCSP_HOURLY).start(timeout=120)
            signers[which] = sg
            admin = sg.admin_client()
            H.build_hierarchy(admin, regions=("us-east-1",))
            r = admin.call("CaAdmin", "RegisterDeviceKeys",
                           pb.ca_admin.RegisterDeviceKeysRequest(records=recs),
                           pb.common.ImportResult, timeout=300)
            admin.close()
            if r.imported != len(recs):
                raise RuntimeError("%s signer did not register the pool: %s" % (which, r))

        sg = signers["filled"]
        sg.stop()
        print("filling %s with %d certificates ..." % (sg.journal, args.rows), flush=True)
        fill_s = fill(sg.journal, args.rows)
        size_mb = os.path.getsize(sg.journal) / 1e6
        print("filled in %.0f s: journal %.0f MB" % (fill_s, size_mb), flush=True)
        sg.start(timeout=600)
        settle(sg.proc.pid)
        with sqlite3.connect("file:%s?mode=ro" % sg.journal, uri=True) as db:
            have = db.execute("SELECT count(*) FROM certs").fetchone()[0]
        if have < args.rows:
            raise RuntimeError("the filled journal holds %d certificates" % have)

        runs = {"filled": [], "empty": []}
        for rep in range(args.runs):
            for which in ("filled", "empty"):
                sg = signers[which]
                cmd = [bench, "issue", "--seconds", str(args.seconds),
                       "--threads", str(args.threads), "--target", sg.issuance,
                       "--product-line", "widgiot", "--region", "us-east-1",
                       "--csr-pool", pool, "--cpu-pid", "signer=%d" % sg.proc.pid]
                p = subprocess.run(cmd, capture_output=True, text=True,
                                   timeout=args.seconds + 120)
                r = RB.parse_result(p.stdout)
                if p.returncode != 0 or r is None or r.get("errors"):
                    raise RuntimeError("bench-issue against the %s signer: %s%s" % (
                        which, p.stdout, p.stderr))
                runs[which].append(r)
                print("  %-6s run %d: %7.1f /s  p50 %6d us  p99 %6d us  signer %5d us/cert"
                      % (which, rep + 1, r["rate"], r["p50_us"], r["p99_us"],
                         r["cpu_signer_us"]), flush=True)

        def med(which, key):
            return statistics.median(r[key] for r in runs[which])

        ratios = [f["rate"] / e["rate"] for f, e in zip(runs["filled"], runs["empty"])]
        summary = {
            "rows": args.rows, "threads": args.threads, "seconds": args.seconds,
            "fill_s": round(fill_s, 1), "journal_mb": round(size_mb),
            "filled_rate": med("filled", "rate"), "empty_rate": med("empty", "rate"),
            "ratio": statistics.median(ratios), "ratio_min": min(ratios),
            "ratio_max": max(ratios),
            "filled_p99_us": med("filled", "p99_us"), "empty_p99_us": med("empty", "p99_us"),
            "filled_cpu_us": med("filled", "cpu_signer_us"),
            "empty_cpu_us": med("empty", "cpu_signer_us"),
        }
        print()
        print("Signer.Issue, %d threads, journal with %d certificates more / empty:"
              % (args.threads, args.rows))
        print("  certs/s   %8.1f / %8.1f   ratio %.2f (%.2f..%.2f)" % (
            summary["filled_rate"], summary["empty_rate"], summary["ratio"],
            summary["ratio_min"], summary["ratio_max"]))
        print("  p99 us    %8d / %8d" % (summary["filled_p99_us"], summary["empty_p99_us"]))
        print("  signer CPU us per certificate %d / %d" % (
            summary["filled_cpu_us"], summary["empty_cpu_us"]))
        print("result rows=%d filled_rate=%.1f empty_rate=%.1f ratio=%.3f filled_cpu_us=%d"
              " empty_cpu_us=%d fill_s=%.1f journal_mb=%d" % (
                  args.rows, summary["filled_rate"], summary["empty_rate"], summary["ratio"],
                  summary["filled_cpu_us"], summary["empty_cpu_us"], fill_s, size_mb))
        if args.json_out:
            with open(args.json_out, "w") as f:
                json.dump({"summary": summary, "runs": runs}, f, indent=1)
        return 0
    finally:
        for sg in signers.values():
            try:
                sg.stop()
            except Exception:
                pass
        if args.keep:
            print("kept %s" % top)
        else:
            shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
