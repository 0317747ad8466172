#!/usr/bin/python3
"""The issuance benchmark's smoke run: tests/bench/run_bench.py with one
repetition of short cases, cfssl serve driven by wrk beside ours, a fleet
of a few distinct devices, a short memory case and the cascade revocation
of what it issued, and the floor made of parts measured in the run. It
checks that the harness works and prints every
table, not a speed."""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import tap  # noqa: E402

SRC = os.environ.get("SF_SOURCE_ROOT") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
CASES = ("sign-2,issue-2,issue-tmpfs-2,rpc-2,enroll-tls-2,cfssl-2,enroll-tls-16,"
         "enroll-tls-16-paced,cfssl-16")


def main():
    with tempfile.TemporaryDirectory(prefix="sf-benchsmoke-") as d:
        out = os.path.join(d, "bench.json")
        cmd = ["/usr/bin/python3", os.path.join(SRC, "tests", "bench", "run_bench.py"),
               "--runs", "1", "--seconds", "1", "--fleet", "40", "--memory", "320",
               "--pool", "128",
               "--only", CASES, "--json-out", out]
        if os.environ.get("SF_BUILD_ROOT"):
            cmd += ["--build", os.environ["SF_BUILD_ROOT"]]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        text = p.stdout + p.stderr
        tap.ok(p.returncode == 0, "run_bench.py: every case ran", text[-3000:])
        doc = {}
        if os.path.exists(out):
            with open(out) as f:
                doc = json.load(f)
        cases = doc.get("cases", {})
        tap.ok(all(cases.get(c, {}).get("median_rate", 0) > 0 for c in CASES.split(",")),
               "a rate for every case", str(sorted(cases)))
        e16 = cases.get("enroll-tls-16", {})
        tap.ok((e16.get("median_cpu_signer_us") or 0) > 0 and
               (e16.get("median_cpu_authz_us") or 0) > 0,
               "CPU per enrollment of the signer and authz read from /proc", str(e16))
        tap.ok((cases.get("cfssl-16", {}).get("median_cpu_cfssl_us") or 0) > 0,
               "cfssl serve driven by wrk, its CPU per certificate", str(cases.get("cfssl-16")))
        paced = cases.get("enroll-tls-16-paced", {})
        tap.ok(0 < (paced.get("median_target_rate") or 0) < e16.get("median_rate", 0),
               "the latency case runs open loop below the peak", str(paced))
        ratios = doc.get("ratios", {})
        tap.ok(all(k in ratios for k in ("enroll TLS/cfssl 2", "enroll TLS/cfssl 16",
                                         "issue/sign 2 threads")),
               "ratios against cfssl and the token", str(sorted(ratios)))
        fleet = doc.get("fleet") or {}
        tap.ok(fleet.get("calls") == 40 and fleet.get("errors") == 0,
               "the fleet: 40 distinct devices enrolled once each", str(fleet))
        mem = doc.get("memory") or {}
        tap.ok(mem.get("calls") == 320 and all(
            (mem.get("rss_after_kb") or {}).get(k, 0) > 0 for k in ("signer", "authz")),
            "the memory case: resident sets before and after", str(mem))
        cas = doc.get("cascade") or {}
        tap.ok(cas.get("certificates", 0) > 320 and
               cas.get("crl_entries", 0) >= cas.get("certificates", 0) and
               0 < cas.get("revoke_s", 0) <= cas.get("crl_s", 0),
               "the cascade: every certificate of the old generation revoked, and"
               " its CRL lists them all", str(cas))
        fl = doc.get("floor") or {}
        parts = fl.get("signer_parts") or {}
        tap.ok(len(parts) == 5 and all(v >= 0 for v in parts.values()) and
               sum(1 for v in parts.values() if v > 0) >= 4 and
               abs(fl.get("signer_us", 0) - sum(parts.values())) < 1 and
               len(doc.get("csr_parse_us") or []) == 1 and
               (cases.get("rpc-2", {}).get("median_cpu_signer_us") or 0) > 0,
               "the floor: token, two verifications, a bare gRPC call (GetCaChain) and"
               " the commit, each measured", str(fl))
        tap.ok(fl.get("issue_sign_ceiling", 0) > 0 and fl.get("enroll_cfssl_ceiling", 0) > 0
               and "the signer's floor" in p.stdout,
               "the ceilings the floor implies, printed", p.stdout[-2500:])
        tap.ok(len(doc.get("targets", [])) == 7 and "issue 13's targets" in p.stdout,
               "the targets table", p.stdout[-1500:])
    tap.done()


if __name__ == "__main__":
    main()
