#!/usr/bin/python3
"""How long the signer takes to come back with a big journal (the fault
issue's goal: under 1 s with 1 M certificate rows).

Builds a stack (signer + authz, SoftHSM2, the CA hierarchy), enrolls one
device so that the journal holds a real certificate row, stops the
signer, then copies that row ROWS times (distinct serials, devices and
issue times spread over a year) straight into the journal with sqlite3.
Then restarts the signer --runs times, killed with SIGKILL in between (the
case the goal is about), and reports for each: seconds until both sockets
accept calls, and until a new enrollment through authz has its
certificate. Prints the medians (and min..max) and, for scale, the same
for the journal as it was before the copy.

  bench_startup.py [--rows N] [--runs R] [--keep]
"""
import argparse
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import sfharness as H  # noqa: E402

pb = H.protos()


def restart(st, kill=True):
    """Kill -9 (or stop) the signer, start it: (ready_s, issue_s)."""
    if kill:
        st.signer.proc.kill()
        st.signer.proc.wait()
        st.signer.proc = None
        st.signer.log.close()
    else:
        st.signer.stop()
    for a in (st.signer.issuance, st.signer.admin):
        try:
            os.unlink(a[5:])
        except OSError:
            pass
    t0 = time.monotonic()
    st.signer.start(timeout=600)
    while True:
        try:
            st.sadmin.call("CaAdmin", "GetStatus", pb.ca_admin.GetStatusRequest(),
                           pb.ca_admin.GetStatusResponse, timeout=5)
            break
        except Exception:  # noqa: BLE001
            if time.monotonic() - t0 > 600:
                raise
            time.sleep(0.01)
    ready = time.monotonic() - t0
    return ready, t0


def enroll_after(st, dev, t0, n):
    while True:
        try:
            st.enroll(dev, key="startup-%d" % n)
            return time.monotonic() - t0
        except Exception:  # noqa: BLE001
            if time.monotonic() - t0 > 600:
                raise
            time.sleep(0.01)


def fill(journal, rows):
    db = sqlite3.connect(journal)
    db.execute("PRAGMA journal_mode=WAL")
    tmpl = db.execute("SELECT rowid FROM certs WHERE device_id = 'bulk-tmpl'").fetchone()[0]
    cols = [r[1] for r in db.execute("PRAGMA table_info(certs)")]
    sel = []
    for c in cols:
        if c == "serial":
            sel.append("printf('7%039X', x)")
        elif c == "device_id":
            sel.append("'bulk-' || x")
        elif c == "enrollment_id":
            sel.append("''")
        elif c == "issued_at":
            sel.append("issued_at - (x % 31536000)")
        else:
            sel.append(c)
    t0 = time.monotonic()
    done = 0
    step = 100000
    while done < rows:
        k = min(step, rows - done)
        db.execute("BEGIN")
        db.execute("WITH RECURSIVE s(x) AS (SELECT ? UNION ALL SELECT x + 1 FROM s WHERE x < ?)"
                   " INSERT INTO certs (%s) SELECT %s FROM s, certs WHERE certs.rowid = ?"
                   % (", ".join(cols), ", ".join(sel)), (done + 1, done + k, tmpl))
        db.execute("COMMIT")
        done += k
    n = db.execute("SELECT count(*) FROM certs").fetchone()[0]
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return n, time.monotonic() - t0


def measure(st, devs, runs, label, base):
    ready, issue = [], []
    for i in range(runs):
        r, t0 = restart(st, kill=True)
        ready.append(r)
        issue.append(enroll_after(st, devs[(base + i) % len(devs)], t0, base + i))
    print("%-28s ready %.3f s (%.3f..%.3f)   first enrollment %.3f s (%.3f..%.3f)" % (
        label, statistics.median(ready), min(ready), max(ready),
        statistics.median(issue), min(issue), max(issue)), flush=True)
    return statistics.median(ready), statistics.median(issue)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1000000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    td = H.TempDir("sf-startup-")
    st = None
    try:
        st = H.Stack(td.path, regions=("us-east-1",), signer_kw={"device_live": 1000})
        devs = [H.Device(td.path, "start-%04d" % i) for i in range(2 * a.runs + 1)]
        tmpl = H.Device(td.path, "bulk-tmpl")
        st.register(devs + [tmpl])
        st.enroll(tmpl)
        rows0 = sqlite3.connect(st.signer.journal).execute(
            "SELECT count(*) FROM certs").fetchone()[0]
        measure(st, devs, a.runs, "journal of %d rows" % rows0, 0)
        st.signer.stop()
        n, secs = fill(st.signer.journal, a.rows)
        size = os.path.getsize(st.signer.journal)
        print("journal filled: %d certificate rows, %.0f MB, in %.1f s" % (
            n, size / 1e6, secs), flush=True)
        st.signer.start(timeout=600)
        measure(st, devs, a.runs, "journal of %d rows" % n, a.runs)
    finally:
        if st is not None:
            st.stop()
        if a.keep:
            print("kept", td.path)
        else:
            td.cleanup()


if __name__ == "__main__":
    main()
