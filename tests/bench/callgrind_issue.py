#!/usr/bin/python3
"""Instructions per Signer.Issue, counted by callgrind (deterministic where
wall time on a shared VM is not).

Sets up a token and a signer with the CA hierarchy (tests/lib/sfharness.py)
and one device per key type, then for each key type restarts the signer
under valgrind --tool=callgrind --toggle-collect=h_issue (the Issue
handler: CSR checks, journal look-ups, build, lint, token signature,
verification, journal commit), sends a few calls to warm it, zeroes the
counters, sends N calls with bench-issue, stops the signer and divides.

  callgrind_issue.py [--calls N] [--types ec-p256,ec-p384,rsa-2048]
                     [--enrollment-ids] [--build DIR] [--keep]

--enrollment-ids sends a new enrollment id with each call, as authz does.

Prints one line per key type:
  result type=ec-p256 calls=N instructions_per_call=I
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.abspath(os.path.join(HERE, "..", ".."))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=100)
    ap.add_argument("--types", default="ec-p256,ec-p384,rsa-2048")
    ap.add_argument("--build", default=os.environ.get("SF_BUILD_ROOT") or os.path.join(SRC, "build"))
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--enrollment-ids", action="store_true",
                    help="a new enrollment id with each call, as authz sends")
    args = ap.parse_args()
    os.environ["SF_SOURCE_ROOT"] = SRC
    os.environ["SF_BUILD_ROOT"] = os.path.abspath(args.build)
    sys.path.insert(0, os.path.join(SRC, "tests", "lib"))
    import sfharness as H
    pb = H.protos()
    bench = os.path.join(args.build, "tests", "bench", "bench-issue")
    top = tempfile.mkdtemp(prefix="sf-cg-issue-")
    sg = None
    try:
        tok = H.Token(os.path.join(top, "token"))
        sg = H.Signer(top, tok, device_max=1000000, global_rate=10000000,
                      global_burst=10000000, device_live=1000000,
                      log_level="warning")
        sg.start()
        admin = sg.admin_client()
        H.build_hierarchy(admin, regions=("us-east-1",))
        types = args.types.split(",")
        devs = [H.Device(top, "cg-%s" % t, t) for t in types]
        recs = [pb.common.DeviceKeyRecord(device_id=d.id, spki_der=d.spki_der(),
                                          product_line="widgiot", region="us-east-1",
                                          line=i + 1) for i, d in enumerate(devs)]
        r = admin.call("CaAdmin", "RegisterDeviceKeys",
                       pb.ca_admin.RegisterDeviceKeysRequest(records=recs),
                       pb.common.ImportResult)
        assert r.imported == len(devs), r
        admin.close()
        sg.stop()
        for d in devs:
            csr = os.path.join(top, d.id + ".csr")
            with open(csr, "wb") as f:
                f.write(d.csr())
            out = os.path.join(top, "callgrind.%s.out" % d.key_type)
            sg.prefix = ["valgrind", "--tool=callgrind", "--toggle-collect=h_issue",
                         "--callgrind-out-file=" + out]
            sg.start(timeout=120)

            def issue(n):
                # bench-issue is time-based: run until n calls are done.
                cmd = [bench, "issue", "--target", sg.issuance, "--csr", csr,
                       "--product-line", "widgiot", "--region", "us-east-1",
                       "--warmup", "0", "--calls", str(n), "--seconds", "900"]
                if args.enrollment_ids:
                    cmd += ["--enrollment-ids", "1"]
                p = subprocess.run(cmd, capture_output=True, text=True)
                if p.returncode != 0:
                    raise RuntimeError("bench-issue: %s %s" % (p.stdout, p.stderr))
                return int(re.search(r"calls=(\d+)", p.stdout).group(1))

            issue(5)
            subprocess.run(["callgrind_control", "--zero", str(sg.proc.pid)],
                           check=True, capture_output=True)
            n = issue(args.calls)
            sg.stop(timeout=120)
            total = None
            with open(out) as f:
                for line in f:
                    if line.startswith("totals:") or line.startswith("summary:"):
                        total = int(line.split()[1])
            # --zero dumps nothing, so the file holds the counters since it.
            print("result type=%s calls=%d instructions_per_call=%d" %
                  (d.key_type, n, total // n), flush=True)
    finally:
        if sg is not None and sg.proc is not None:
            sg.stop()
        if args.keep:
            print("kept", top)
        else:
            shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    main()
