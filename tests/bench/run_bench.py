#!/usr/bin/python3
"""Benchmarks of the issuance path, layer by layer, with ratios measured in
the same run (the machine is a noisy VM: absolute figures swing 30-40 %
between runs, ratios of figures taken seconds apart much less).

Sets up, with tests/lib/sfharness.py:
  - a SoftHSM2 token of its own for the raw signing baseline;
  - a signer (journal on disk) with the CA hierarchy and an authz in front
    of it (TLS device listener + admin Unix socket), rate caps raised;
  - a second signer whose journal is on tmpfs (/dev/shm), the same in every
    other respect, to put a number on the journal's fsync;
  - two P-256 bench devices registered in both signers and in authz
    (bench-0001 for everything; bench-0002 so that a second enrolling
    thread has a device of its own: authz serialises one device's
    enrollments).
Then runs every case --runs times, interleaved (one repetition runs each
case once, so slow phases of the VM hit every case alike), and prints the
medians and the median of each per-repetition ratio.

  run_bench.py [--runs N] [--seconds S] [--quick] [--json-out FILE]
               [--bench PATH] [--build DIR] [--only CASE,...] [--keep]
"""
import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.abspath(os.path.join(HERE, "..", ".."))

# (name, mode, threads, stack, devices, description)
CASES = [
    ("sign-1", "sign", 1, None, 0, "token_sign, SoftHSM2 P-256 (300-byte TBS)"),
    ("sign-2", "sign", 2, None, 0, "token_sign, SoftHSM2 P-256 (300-byte TBS)"),
    ("issue-1", "issue", 1, "disk", 2, "Signer.Issue over unix: (journal on disk)"),
    ("issue-2", "issue", 2, "disk", 2, "Signer.Issue over unix: (journal on disk)"),
    ("issue-tmpfs-1", "issue", 1, "tmpfs", 2, "Signer.Issue over unix: (journal on tmpfs)"),
    ("issue-tmpfs-2", "issue", 2, "tmpfs", 2, "Signer.Issue over unix: (journal on tmpfs)"),
    ("enroll-tls-1", "enroll", 1, "tls", 2, "Provisioning.Enroll, authz TLS listener"),
    ("enroll-tls-2", "enroll", 2, "tls", 2, "Provisioning.Enroll, authz TLS listener"),
    ("enroll-tls-2-onedev", "enroll", 2, "tls", 1,
     "Provisioning.Enroll, TLS, 2 threads, ONE device"),
    ("enroll-unix-1", "enroll", 1, "unix", 2, "Provisioning.Enroll, authz admin unix:"),
    ("enroll-unix-2", "enroll", 2, "unix", 2, "Provisioning.Enroll, authz admin unix:"),
]

# (name, numerator case, denominator case, what it says)
RATIOS = [
    ("issue/sign 1 thread", "issue-1", "sign-1",
     "end-to-end issuance via the signer vs raw token signing"),
    ("issue/sign 2 threads", "issue-2", "sign-2", ""),
    ("journal: disk/tmpfs 1 thread", "issue-1", "issue-tmpfs-1",
     "issuance with the journal's fsync vs without (tmpfs)"),
    ("journal: disk/tmpfs 2 threads", "issue-2", "issue-tmpfs-2", ""),
    ("enroll TLS/issue 1 thread", "enroll-tls-1", "issue-1",
     "enrollment via authz (TLS) vs direct signer issuance"),
    ("enroll TLS/issue 2 threads", "enroll-tls-2", "issue-2", ""),
    ("enroll unix/issue 1 thread", "enroll-unix-1", "issue-1",
     "enrollment via authz's admin socket vs direct issuance"),
    ("enroll TLS/unix 1 thread", "enroll-tls-1", "enroll-unix-1",
     "TLS on the device listener vs a Unix socket"),
    ("enroll 2 threads: one device/two", "enroll-tls-2-onedev", "enroll-tls-2",
     "authz serialises one device's enrollments"),
    ("sign 2/1 threads", "sign-2", "sign-1", "thread scaling"),
    ("issue 2/1 threads", "issue-2", "issue-1", ""),
    ("issue tmpfs 2/1 threads", "issue-tmpfs-2", "issue-tmpfs-1", ""),
    ("enroll TLS 2/1 threads", "enroll-tls-2", "enroll-tls-1", ""),
]

RESULT_RE = re.compile(r"^result (.*)$", re.M)


def parse_result(text):
    m = RESULT_RE.search(text)
    if not m:
        return None
    out = {}
    for kv in m.group(1).split():
        k, v = kv.split("=", 1)
        try:
            out[k] = float(v) if "." in v else int(v)
        except ValueError:
            out[k] = v
    return out


def openssl_speed(seconds):
    """ECDSA P-256 sign/s of `openssl speed`: how fast the machine is right
    now, to set these figures beside baselines.md's."""
    p = subprocess.run(["openssl", "speed", "-seconds", str(seconds), "ecdsap256"],
                       capture_output=True, text=True)
    m = re.search(r"256 bits ecdsa \(nistp256\)\s+\S+s\s+\S+s\s+([\d.]+)\s+([\d.]+)",
                  p.stdout)
    return (float(m.group(1)), float(m.group(2))) if m else (None, None)


class Setup:
    def __init__(self, args):
        # The harness reads SF_BUILD_ROOT when it is imported.
        os.environ["SF_SOURCE_ROOT"] = SRC
        os.environ["SF_BUILD_ROOT"] = args.build
        sys.path.insert(0, os.path.join(SRC, "tests", "lib"))
        import sfharness as H
        self.H = H
        self.args = args
        self.procs = []
        self.dirs = []
        self.pb = H.protos()
        # protos() generated the Python modules into a temporary directory
        # it put first on sys.path: ours to remove at the end.
        if sys.path and os.path.basename(sys.path[0]).startswith("sf-pb-"):
            self.dirs.append(sys.path[0])

    def tempdir(self, prefix, base=None):
        d = tempfile.mkdtemp(prefix=prefix, dir=base)
        self.dirs.append(d)
        return d

    def signer(self, dir):
        H = self.H
        tok = H.Token(os.path.join(dir, "token"))
        # Two devices get every certificate: no cap on live ones.
        sg = H.Signer(dir, tok, device_max=1000000, global_rate=10000000,
                      global_burst=10000000, device_live=1000000).start()
        self.procs.append(sg)
        admin = sg.admin_client()
        H.build_hierarchy(admin, regions=("us-east-1",))
        return sg, admin

    def register(self, admin, devs, authz_admin=None):
        pb = self.pb
        recs = [pb.common.DeviceKeyRecord(device_id=d.id, spki_der=d.spki_der(),
                                          product_line="widgiot", region="us-east-1",
                                          line=i + 1)
                for i, d in enumerate(devs)]
        r = admin.call("CaAdmin", "RegisterDeviceKeys",
                       pb.ca_admin.RegisterDeviceKeysRequest(records=recs),
                       pb.common.ImportResult)
        if r.imported != len(devs):
            raise RuntimeError("signer did not register the bench devices: %s" % r)
        if authz_admin is not None:
            r = authz_admin.call("Registry", "ImportDevices",
                                 pb.registry.ImportDevicesRequest(records=recs),
                                 pb.common.ImportResult)
            if r.imported != len(devs):
                raise RuntimeError("authz did not register the bench devices: %s" % r)

    def start(self):
        H = self.H
        top = self.tempdir("sf-bench-")
        self.top = top
        # The raw signing baseline: a token of its own, not shared with a signer.
        self.sign_token = H.Token(os.path.join(top, "sign-token"), label="bench")

        # Devices: keys and CSRs made once (PEM, as devices send them).
        ddir = os.path.join(top, "devices")
        os.makedirs(ddir)
        self.devs = [H.Device(ddir, "bench-%04d" % i, "ec-p256") for i in (1, 2)]
        self.csrs = []
        for d in self.devs:
            path = os.path.join(ddir, d.id + ".csr")
            with open(path, "wb") as f:
                f.write(d.csr())
            self.csrs.append(path)

        # Signer with its journal on disk, and authz in front of it.
        sdir = os.path.join(top, "disk")
        os.makedirs(sdir)
        self.sg, sadmin = self.signer(sdir)
        key, crt, root = H.server_cert(sadmin, sdir, "authz")
        self.root_pem = os.path.join(sdir, "root.pem")
        with open(self.root_pem, "w") as f:
            f.write(root)
        self.az = BenchAuthz(H, sdir, self.sg, crt, key).start()
        self.procs.append(self.az)
        aadmin = self.az.admin_client()
        self.register(sadmin, self.devs, aadmin)
        sadmin.close()
        aadmin.close()

        # The same signer with its journal on tmpfs (fsync costs nothing).
        self.tmpfs = None
        if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
            tdir = self.tempdir("sf-bench-shm-", "/dev/shm")
            self.tmpfs, tadmin = self.signer(tdir)
            self.register(tadmin, self.devs)
            tadmin.close()
        return self

    def command(self, case, seconds):
        name, mode, threads, stack, ndev, _ = case
        b = [self.args.bench, mode, "--seconds", str(seconds), "--threads", str(threads)]
        csrs = []
        for p in self.csrs[:ndev]:
            csrs += ["--csr", p]
        if mode == "sign":
            return b + ["--module", self.H.SOFTHSM_MODULE, "--uri", "pkcs11:token=bench",
                        "--pin-file", self.sign_token.pin_file,
                        "--label", "bench-p256"], self.sign_token.env()
        if mode == "issue":
            sg = self.sg if stack == "disk" else self.tmpfs
            if sg is None:
                return None, None
            return b + ["--target", sg.issuance, "--product-line", "widgiot",
                        "--region", "us-east-1"] + csrs, None
        prefix = "%s-%d" % (name, int(time.time() * 1000))
        if stack == "tls":
            return b + ["--target", self.az.device, "--ca-file", self.root_pem,
                        "--key-prefix", prefix] + csrs, None
        return b + ["--target", self.az.admin, "--key-prefix", prefix] + csrs, None

    def stop(self):
        for p in reversed(self.procs):
            try:
                p.stop()
            except Exception:
                pass
        if not self.args.keep:
            import shutil
            for d in self.dirs:
                shutil.rmtree(d, ignore_errors=True)


class BenchAuthz:
    """The harness's Authz with the global rate cap raised too (its
    template sets only the per-device cap)."""

    def __new__(cls, H, dir, signer, crt, key):
        class _A(H.Authz):
            def write_conf(self, **changes):
                self.params.update(changes)
                text = H.AUTHZ_CONF.format(**self.params).replace(
                    "[limits]\n", "[limits]\nglobal_per_second = 10000000\n"
                    "global_burst = 10000000\n", 1)
                with open(self.conf_path, "w") as f:
                    f.write(text)
        return _A(dir, signer, crt, key, device_max=1000000)


def fmt_rate(x):
    return "%.0f" % x if x is not None else "-"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5, help="repetitions of every case (default 5)")
    ap.add_argument("--seconds", type=float, default=3.0, help="seconds per run (default 3)")
    ap.add_argument("--quick", action="store_true", help="3 repetitions of 1 s")
    ap.add_argument("--json-out", help="write every run and the summary here")
    ap.add_argument("--build", default=os.environ.get("SF_BUILD_ROOT") or os.path.join(SRC, "build"))
    ap.add_argument("--bench", help="the bench-issue program (default BUILD/tests/bench/bench-issue)")
    ap.add_argument("--only", help="comma-separated case names")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directories")
    args = ap.parse_args()
    if args.quick:
        args.runs, args.seconds = 3, 1.0
    args.build = os.path.abspath(args.build)
    args.bench = args.bench or os.path.join(args.build, "tests", "bench", "bench-issue")
    if not os.access(args.bench, os.X_OK):
        sys.exit("run_bench: %s not built (ninja -C %s)" % (args.bench, args.build))
    cases = CASES
    if args.only:
        want = set(args.only.split(","))
        cases = [c for c in CASES if c[0] in want]
        if not cases:
            sys.exit("run_bench: no such case; cases: %s" % ", ".join(c[0] for c in CASES))

    st = Setup(args)
    runs = {c[0]: [] for c in cases}
    speed = []
    failures = []
    t0 = time.time()
    load = [os.getloadavg()[0]]
    try:
        print("setting up: tokens, signers, CA hierarchy, authz, bench devices ...", flush=True)
        st.start()
        for rep in range(args.runs):
            s, v = openssl_speed(1)
            speed.append({"sign": s, "verify": v})
            for c in cases:
                cmd, env = st.command(c, args.seconds)
                if cmd is None:
                    continue
                p = subprocess.run(cmd, capture_output=True, text=True, env=env,
                                   timeout=args.seconds + 120)
                r = parse_result(p.stdout)
                if p.returncode != 0 or r is None:
                    failures.append((c[0], rep, p.returncode, p.stderr.strip()[-500:]))
                    print("  %-20s run %d FAILED: %s" % (c[0], rep + 1, p.stderr.strip()[-300:]),
                          flush=True)
                    continue
                r["rep"] = rep
                runs[c[0]].append(r)
                print("  %-20s run %d: %8.1f /s  p50 %6d us  p99 %6d us" % (
                    c[0], rep + 1, r["rate"], r["p50_us"], r["p99_us"]), flush=True)
    finally:
        load.append(os.getloadavg()[0])
        st.stop()

    summary = {}
    for c in cases:
        rs = runs[c[0]]
        if not rs:
            continue
        summary[c[0]] = {
            "what": c[5], "threads": c[2],
            "median_rate": statistics.median(r["rate"] for r in rs),
            "min_rate": min(r["rate"] for r in rs),
            "max_rate": max(r["rate"] for r in rs),
            "median_p50_us": statistics.median(r["p50_us"] for r in rs),
            "median_p99_us": statistics.median(r["p99_us"] for r in rs),
            "runs": len(rs),
        }
    ratios = {}
    for name, num, den, what in RATIOS:
        byrep_n = {r["rep"]: r["rate"] for r in runs.get(num, [])}
        byrep_d = {r["rep"]: r["rate"] for r in runs.get(den, [])}
        per = [byrep_n[k] / byrep_d[k] for k in sorted(byrep_n) if k in byrep_d and byrep_d[k]]
        if per:
            ratios[name] = {"median": statistics.median(per), "min": min(per),
                            "max": max(per), "per_run": per, "num": num, "den": den,
                            "what": what}
    # Per-call costs at one thread (µs of wall time per call, from the medians).
    costs = {}

    def us(case):
        return 1e6 / summary[case]["median_rate"] if case in summary else None
    pairs = [("token_sign", "sign-1", None),
             ("Signer.Issue", "issue-1", None),
             ("Signer.Issue minus token_sign", "issue-1", "sign-1"),
             ("journal fsync share (disk minus tmpfs)", "issue-1", "issue-tmpfs-1"),
             ("Enroll TLS", "enroll-tls-1", None),
             ("authz's share (Enroll TLS minus Issue)", "enroll-tls-1", "issue-1")]
    for label, a, b in pairs:
        if us(a) is not None and (b is None or us(b) is not None):
            costs[label] = us(a) - (us(b) if b else 0)

    sp = [x["sign"] for x in speed if x["sign"]]
    print()
    print("secretfree issuance benchmarks, %s, %d runs x %.0f s per case, %s" % (
        datetime.date.today().isoformat(), args.runs, args.seconds, platform.node()))
    if sp:
        print("machine right now: openssl speed ecdsap256 sign %.0f/s (median; baselines.md: 54,000);"
              " load average %.1f at the start, %.1f at the end" % (statistics.median(sp), load[0], load[-1]))
    print()
    print("%-22s %-46s %3s %9s %17s %8s %8s" % ("case", "what", "thr", "median/s",
                                              "min..max", "p50 us", "p99 us"))
    for c in cases:
        s = summary.get(c[0])
        if s is None:
            print("%-22s %-46s %3d %9s" % (c[0], c[5], c[2], "n/a"))
            continue
        print("%-22s %-46s %3d %9s %17s %8.0f %8.0f" % (
            c[0], c[5], c[2], fmt_rate(s["median_rate"]),
            "%s..%s" % (fmt_rate(s["min_rate"]), fmt_rate(s["max_rate"])),
            s["median_p50_us"], s["median_p99_us"]))
    print()
    print("ratios (median of the per-repetition ratios; min..max)")
    for name, num, den, what in RATIOS:
        r = ratios.get(name)
        if r:
            print("  %-34s %6.2f  (%.2f..%.2f)  %s" % (name, r["median"], r["min"], r["max"], what))
    print()
    print("wall time per call at one thread, from the medians")
    for k, v in costs.items():
        print("  %-44s %7.0f us" % (k, v))
    if failures:
        print()
        print("FAILED runs: %d" % len(failures))
        for f in failures:
            print("  %s run %d rc=%s: %s" % (f[0], f[1] + 1, f[2], f[3]))

    if args.json_out:
        doc = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
               "host": platform.node(), "cpus": os.cpu_count(),
               "runs_per_case": args.runs, "seconds_per_run": args.seconds,
               "elapsed_s": round(time.time() - t0, 1),
               "openssl_speed_ecdsap256": speed, "loadavg_start_end": load,
               "cases": summary, "ratios": ratios, "per_call_us_1thread": costs,
               "runs": runs, "failures": failures}
        with open(args.json_out, "w") as f:
            json.dump(doc, f, indent=2)
        print("\nJSON: %s" % args.json_out)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
