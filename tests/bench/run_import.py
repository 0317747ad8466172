#!/usr/bin/python3
"""The factory import at volume: `secretfree device import` of N JSON Lines
records into a signer and an authz, with records/s and the peak RSS of
the three processes.

Sets up (tests/lib/sfharness.py) a SoftHSM2 token, a signer with
root -> widgiot -> us-east-1.widgiot and an authz, their databases in a
temporary directory under --dir (default $TMPDIR or /tmp: on disk, as in
production). `bench-keys gen-import` writes the records (P-256, and
--rsa-percent RSA-2048; see tests/bench/bench_keys.c), then the CLI
imports the file with the daemons' admin sockets as targets, and must
import every record.

  run_import.py [--records N] [--rsa-percent P] [--batch B] [--dir DIR]
                [--callgrind cli|signer|authz] [--json-out FILE] [--keep]
                [--build DIR]

Prints the run and one line to parse:
  result records=N seconds=S rate=R cli_rss_kb=K signer_rss_kb=K authz_rss_kb=K
The CLI's peak RSS is wait4()'s ru_maxrss for it; each daemon's is VmHWM
from /proc/PID/status after the import (the peak over its whole life,
start-up and CA creation included). Also printed: each process's CPU
seconds during the import and, for the daemons, the bytes they had
written to storage (/proc/PID/io: the databases' WAL and checkpoints). With --callgrind, that process runs
under valgrind --tool=callgrind (for a daemon its counters are zeroed just
before the import) and the instructions per record are printed too; the
figures for time are then meaningless.
"""
import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.abspath(os.path.join(HERE, "..", ".."))


def vmhwm_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return None


def io_write_kb(pid):
    """Bytes the process caused to be written to storage (/proc/PID/io)."""
    try:
        with open("/proc/%d/io" % pid) as f:
            for line in f:
                if line.startswith("write_bytes:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return None


def cpu_s(pid):
    """User + system CPU seconds of a live process (/proc/PID/stat)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def callgrind_total(path):
    with open(path) as f:
        for line in f:
            if line.startswith("totals:") or line.startswith("summary:"):
                return int(line.split()[1])
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=1000000)
    ap.add_argument("--rsa-percent", type=int, default=10)
    ap.add_argument("--batch", type=int, default=0, help="the CLI's --batch (default: its own)")
    ap.add_argument("--dir", default=os.environ.get("TMPDIR") or "/tmp")
    ap.add_argument("--callgrind", choices=("cli", "signer", "authz"))
    ap.add_argument("--json-out")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--build", default=os.environ.get("SF_BUILD_ROOT") or os.path.join(SRC, "build"))
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    os.environ["SF_SOURCE_ROOT"] = SRC
    os.environ["SF_BUILD_ROOT"] = build
    sys.path.insert(0, os.path.join(SRC, "tests", "lib"))
    import sfharness as H

    top = tempfile.mkdtemp(prefix="sf-bench-import-", dir=args.dir)
    procs = []
    cg = {}
    try:
        tok = H.Token(os.path.join(top, "token"))
        sg = H.Signer(top, tok, log_level="warning")
        if args.callgrind == "signer":
            cg["signer"] = os.path.join(top, "callgrind.signer")
            sg.prefix = ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + cg["signer"]]
        sg.start(timeout=120)
        procs.append(sg)
        sadmin = sg.admin_client()
        H.build_hierarchy(sadmin, regions=("us-east-1",))
        key, crt, _ = H.server_cert(sadmin, top, "authz")
        sadmin.close()
        az = H.Authz(top, sg, crt, key)
        if args.callgrind == "authz":
            cg["authz"] = os.path.join(top, "callgrind.authz")
            az.prefix = ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + cg["authz"]]
        az.start(timeout=120)
        procs.append(az)

        recs = os.path.join(top, "devices.jsonl")
        t0 = time.time()
        with open(recs, "w") as f:
            subprocess.run([os.path.join(build, "tests", "bench", "bench-keys"), "gen-import",
                            "-n", str(args.records), "--rsa-percent", str(args.rsa_percent)],
                           stdout=f, check=True)
        gen_s = time.time() - t0
        print("generated %d records (%d%% RSA-2048) in %.1f s: %s (%.0f MB)" % (
            args.records, args.rsa_percent, gen_s, recs, os.path.getsize(recs) / 1e6),
            flush=True)

        wkb0 = {"signer": io_write_kb(sg.proc.pid), "authz": io_write_kb(az.proc.pid)}
        cpu0 = {"signer": cpu_s(sg.proc.pid), "authz": cpu_s(az.proc.pid)}
        for who, d in (("signer", sg), ("authz", az)):
            if who in cg:
                subprocess.run(["callgrind_control", "--zero", str(d.proc.pid)],
                               check=True, capture_output=True)
        cmd = [H.CLI_PATH, "device", "import", recs]
        if args.batch:
            cmd += ["--batch", str(args.batch)]
        if args.callgrind == "cli":
            cg["cli"] = os.path.join(top, "callgrind.cli")
            cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + cg["cli"]] + cmd
        env = dict(H.Cli(top).env, SECRETFREE_SIGNER=sg.admin, SECRETFREE_AUTHZ=az.admin)
        out = open(os.path.join(top, "import.out"), "w+")
        t0 = time.time()
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        _, status, ru = os.wait4(p.pid, 0)
        secs = time.time() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read()
        out.close()
        m = re.search(r"imported (\d+), unchanged (\d+), refused (\d+)", text)
        if p.returncode != 0 or not m or int(m.group(1)) != args.records:
            raise RuntimeError("import failed (exit %d): %s" % (p.returncode, text[-2000:]))
        rss = {"cli": ru.ru_maxrss, "signer": vmhwm_kb(sg.proc.pid),
               "authz": vmhwm_kb(az.proc.pid)}
        cpu = {"cli": ru.ru_utime + ru.ru_stime,
               "signer": cpu_s(sg.proc.pid) - cpu0["signer"],
               "authz": cpu_s(az.proc.pid) - cpu0["authz"]}
        wkb = {"signer": io_write_kb(sg.proc.pid) - wkb0["signer"],
               "authz": io_write_kb(az.proc.pid) - wkb0["authz"]}
        for d in (az, sg):
            d.stop(timeout=300)
        procs = []
        rate = args.records / secs
        res = {"records": args.records, "rsa_percent": args.rsa_percent,
               "batch": args.batch or None, "seconds": round(secs, 3), "rate": round(rate, 1),
               "cli_rss_kb": rss["cli"], "signer_rss_kb": rss["signer"],
               "authz_rss_kb": rss["authz"], "signer_write_mb": wkb["signer"] // 1024,
               "authz_write_mb": wkb["authz"] // 1024,
               "cli_cpu_s": round(cpu["cli"], 1), "signer_cpu_s": round(cpu["signer"], 1),
               "authz_cpu_s": round(cpu["authz"], 1)}
        for who, path in cg.items():
            total = callgrind_total(path)
            res["%s_instructions_per_record" % who] = total // args.records if total else None
            if args.keep:
                res["%s_callgrind_out" % who] = path
        print("import of %d records: %.1f s, %.0f records/s; peak RSS: CLI %.1f MB, "
              "signer %.1f MB, authz %.1f MB" % (
                  args.records, secs, rate, rss["cli"] / 1024, rss["signer"] / 1024,
                  rss["authz"] / 1024))
        print("result " + " ".join("%s=%s" % kv for kv in res.items()), flush=True)
        if args.json_out:
            with open(args.json_out, "w") as f:
                json.dump(res, f, indent=1)
    finally:
        for d in procs:
            try:
                d.stop(timeout=300)
            except Exception:
                pass
        if args.keep:
            print("kept", top)
        else:
            shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    main()
