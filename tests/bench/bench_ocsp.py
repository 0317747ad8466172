#!/usr/bin/python3
"""OCSP responses served per second by authz's [http] listener, three ways,
measured in one run with the cases interleaved (the machine is a noisy VM:
ratios of figures taken seconds apart hold better than absolute figures):

  cache       the same request again and again: authz answers from its
              in-memory cache, the signer is never asked;
  signer      the same, through an authz whose cache is off
              ([http] ocsp_cache_entries = 0): every request goes to the
              signer, which looks its pre-signed response up in the journal;
  on-the-spot a serial never issued, through the authz without a cache:
              every request is signed in the token (on_demand_per_second
              raised out of the way).

The load is curl itself (--parallel, keep-alive), GET requests of the
RFC 6960 A.1 form. Not part of scripts/test.

  bench_ocsp.py [--runs N] [--requests N] [--parallel N] [--build DIR]
"""
import argparse
import base64
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.abspath(os.path.join(HERE, "..", ".."))


def rate(base, enc, n, parallel):
    """GET base/<i>/<enc> n times with curl: responses per second."""
    url = "%s/[1-%d]/%s" % (base, n, enc)
    t = time.monotonic()
    p = subprocess.run(["curl", "-s", "-f", "--parallel", "--parallel-max", str(parallel),
                        "-w", "%{http_code}\\n", "-o", "/dev/null", url],
                       capture_output=True, text=True)
    dt = time.monotonic() - t
    codes = p.stdout.split()
    if p.returncode != 0 or len(codes) != n or set(codes) != {"200"}:
        raise RuntimeError("curl: rc=%d, %d answers, codes %s" % (
            p.returncode, len(codes), sorted(set(codes))))
    return n / dt


def request_b64(tmp, issuer, leaf=None, serial=None):
    out = os.path.join(tmp, "req-%d.der" % time.monotonic_ns())
    what = ["-cert", leaf] if leaf else ["-serial", serial]
    subprocess.run(["openssl", "ocsp", "-issuer", issuer, "-no_nonce", "-reqout", out]
                   + what, check=True, capture_output=True)
    with open(out, "rb") as f:
        return urllib.parse.quote(base64.b64encode(f.read()).decode(), safe="")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--parallel", type=int, default=8)
    ap.add_argument("--build", default=os.path.join(SRC, "build"))
    args = ap.parse_args()
    os.environ["SF_SOURCE_ROOT"] = SRC
    os.environ["SF_BUILD_ROOT"] = args.build
    sys.path.insert(0, os.path.join(SRC, "tests", "lib"))
    import sfharness as H

    H.protos()
    # protos() put the Python modules it generated first on sys.path.
    pbdir = sys.path[0] if os.path.basename(sys.path[0]).startswith("sf-pb-") else None
    tmp = tempfile.mkdtemp(prefix="sf-bench-ocsp-")
    st = nocache = None
    try:
        st = H.Stack(tmp, regions=("us-east-1",),
                     signer_extra="\n[ocsp]\non_demand_per_second = 100000\n")
        dev = H.Device(tmp, "bench-ocsp")
        st.register([dev])
        e = st.enroll(dev)
        chain = H.split_pem(e.chain_pem)
        issuer = os.path.join(tmp, "issuer.pem")
        leaf = os.path.join(tmp, "leaf.pem")
        with open(issuer, "w") as f:
            f.write(chain[0])
        with open(leaf, "w") as f:
            f.write(e.certificate_pem)
        # A second authz on the same signer, without a cache.
        d2 = os.path.join(tmp, "nocache")
        os.makedirs(d2)
        nocache = H.Authz(d2, st.signer, st.tls_crt, st.tls_key)
        with open(nocache.conf_path) as f:
            text = f.read()
        with open(nocache.conf_path, "w") as f:
            f.write(text.replace("[http]\n", "[http]\nocsp_cache_entries = 0\n"))
        nocache.start()

        good = request_b64(tmp, issuer, leaf=leaf)
        unknown = request_b64(tmp, issuer, serial="0x5EC2E7F2EE00000000000000000000AB")
        cases = [("cache", st.authz.http, good), ("signer", nocache.http, good),
                 ("on-the-spot", nocache.http, unknown)]
        for name, base, enc in cases:      # warm up; fills the cache
            rate(base, enc, 50, args.parallel)
        got = {name: [] for name, _, _ in cases}
        for _ in range(args.runs):
            for name, base, enc in cases:
                got[name].append(rate(base, enc, args.requests, args.parallel))
        print("OCSP responses per second, %d GETs x %d runs, curl --parallel-max %d"
              % (args.requests, args.runs, args.parallel))
        for name, _, _ in cases:
            v = got[name]
            print("  %-12s median %8.0f/s  (min %.0f, max %.0f)"
                  % (name, statistics.median(v), min(v), max(v)))
        ratios = [c / s for c, s in zip(got["cache"], got["signer"])]
        print("  cache/signer: median %.1fx (per run: %s)"
              % (statistics.median(ratios), ", ".join("%.1f" % r for r in ratios)))
        ratios = [s / o for s, o in zip(got["signer"], got["on-the-spot"])]
        print("  signer/on-the-spot: median %.1fx" % statistics.median(ratios))
    finally:
        for d in (nocache, st):
            if d is not None:
                d.stop()
        subprocess.run(["rm", "-rf", tmp] + ([pbdir] if pbdir else []))


if __name__ == "__main__":
    main()
