#!/usr/bin/python3
"""Benchmarks of the issuance path, layer by layer and side by side with
cfssl, with ratios measured in the same run (the machine is a noisy VM:
absolute figures swing 30-40 % between runs, ratios of figures taken
seconds apart much less).

Sets up, with tests/lib/sfharness.py:
  - a SoftHSM2 token of its own for the raw signing baseline;
  - a signer (journal on disk) with the CA hierarchy and an authz in front
    of it (TLS device listener + admin Unix socket), rate caps raised;
  - a second signer whose journal is on tmpfs (/dev/shm), the same in every
    other respect, to put a number on the journal's fsync;
  - a pool of --pool P-256 bench devices (default 4,096) registered in
    both signers and in authz; thread i of T sends the requests of devices
    i, i+T, i+2T, ... (bench-issue --csr-pool), so no two threads share a
    device (authz serialises one device's enrollments) and no device piles
    up thousands of live certificates, which no device of a fleet does
    (the signer's admission counts a device's live certificates, up to
    its cap);
  - 64 more P-256 devices, the first of them for the one-device case;
  - `cfssl serve` (Debian's golang-cfssl) with a P-256 software CA made at
    set-up, no registry and no journal, driven by `wrk` with
    tests/bench/wrk_sign.lua cycling through the same devices' CSRs.
Then runs every case --runs times, interleaved (one repetition runs each
case once, so slow phases of the VM hit every case alike), and prints the
medians, the median of each per-repetition ratio, the CPU each daemon
spent per certificate (from /proc/PID/stat over the timed window), and
the issue-13 targets with the figure measured against each. When the run
has sign-2, issue-2, issue-tmpfs-2 and rpc-2 (a bare gRPC call:
Signer.GetCaChain), it also prints the floor: per certificate, the CPU
the signer cannot do without with every check kept (the token's
signature, two ECDSA verifications timed as csr_parse by bench-keys, one
gRPC call, the durable commit), authz's estimated the same way, and the
ceilings of the two throughput ratios those floors allow. After the
repetitions, three one-off cases:
  - fleet: --fleet N distinct devices (generated, imported into the signer
    and authz), each enrolling exactly once, 16 client threads;
  - memory: --memory N enrollments at 16 threads, the resident set of the
    signer and authz before and after;
  - cascade (unless --no-cascade): the region's issuing CA is rotated and
    its old generation, which issued everything the run enrolled, revoked
    with `secretfree ca revoke --cascade`; timed until its CRL lists every
    certificate.

  run_bench.py [--runs N] [--seconds S] [--quick] [--json-out FILE]
               [--fleet N] [--memory N] [--pool N] [--no-cascade]
               [--bench PATH] [--build DIR] [--only CASE,...] [--keep]
"""
import argparse
import datetime
import json
import os
import platform
import math
import re
import shutil
import statistics
import urllib.request
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.abspath(os.path.join(HERE, "..", ".."))

NDEV = 64
POOL = 4096          # default --pool: a multiple of every thread count
PACED_SHARE = 0.8    # the latency case runs at this share of the peak

# (name, mode, threads, stack, devices, description); devices 1: one
# device for every call, else the pool.
# Modes: sign, issue, enroll, chain (bench-issue); enroll with stack "tls-paced"
# runs open loop at PACED_SHARE of the same repetition's enroll-tls-16
# rate; cfssl (wrk against cfssl serve; "threads" are connections).
CASES = [
    ("sign-1", "sign", 1, None, 0, "token_sign, SoftHSM2 P-256 (300-byte TBS)"),
    ("sign-2", "sign", 2, None, 0, "token_sign, SoftHSM2 P-256 (300-byte TBS)"),
    ("issue-1", "issue", 1, "disk", 2, "Signer.Issue over unix: (journal on disk)"),
    ("issue-2", "issue", 2, "disk", 2, "Signer.Issue over unix: (journal on disk)"),
    ("issue-tmpfs-1", "issue", 1, "tmpfs", 2, "Signer.Issue over unix: (journal on tmpfs)"),
    ("issue-tmpfs-2", "issue", 2, "tmpfs", 2, "Signer.Issue over unix: (journal on tmpfs)"),
    ("rpc-2", "chain", 2, "disk", 0, "Signer.GetCaChain over unix: a bare gRPC call"),
    ("enroll-tls-1", "enroll", 1, "tls", 2, "Provisioning.Enroll, authz TLS listener"),
    ("enroll-tls-2", "enroll", 2, "tls", 2, "Provisioning.Enroll, authz TLS listener"),
    ("enroll-tls-2-onedev", "enroll", 2, "tls", 1,
     "Provisioning.Enroll, TLS, 2 threads, ONE device"),
    ("enroll-unix-1", "enroll", 1, "unix", 2, "Provisioning.Enroll, authz admin unix:"),
    ("enroll-unix-2", "enroll", 2, "unix", 2, "Provisioning.Enroll, authz admin unix:"),
    ("cfssl-1", "cfssl", 1, None, NDEV, "cfssl serve /api/v1/cfssl/sign, wrk, HTTP"),
    ("enroll-tls-16", "enroll", 16, "tls", 16, "Provisioning.Enroll, authz TLS listener"),
    ("cfssl-2", "cfssl", 2, None, NDEV, "cfssl serve /api/v1/cfssl/sign, wrk, HTTP"),
    ("enroll-tls-16-paced", "enroll", 16, "tls-paced", 16,
     "Enroll, TLS, open loop at 80% of enroll-tls-16"),
    ("cfssl-16", "cfssl", 16, None, NDEV, "cfssl serve /api/v1/cfssl/sign, wrk, HTTP"),
    ("enroll-tls-64", "enroll", 64, "tls", 64, "Provisioning.Enroll, authz TLS listener"),
    ("cfssl-64", "cfssl", 64, None, NDEV, "cfssl serve /api/v1/cfssl/sign, wrk, HTTP"),
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
    ("enroll TLS/cfssl 1", "enroll-tls-1", "cfssl-1",
     "our enrollment (TLS, both key checks, registry, journal) vs cfssl serve"),
    ("enroll TLS/cfssl 2", "enroll-tls-2", "cfssl-2", ""),
    ("enroll TLS/cfssl 16", "enroll-tls-16", "cfssl-16", ""),
    ("enroll TLS/cfssl 64", "enroll-tls-64", "cfssl-64", ""),
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


def proc_cpu(pid):
    """utime + stime of a process, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


class Cfssl:
    """cfssl serve with a P-256 CA made by `cfssl gencert -initca`."""

    def __init__(self, dir, csr_paths, stop_process):
        self.dir = dir
        self.proc = None
        self.stop_process = stop_process    # sfharness's
        req = {"CN": "bench cfssl CA", "key": {"algo": "ecdsa", "size": 256},
               "names": [{"O": "bench"}]}
        p = subprocess.run(["cfssl", "gencert", "-initca", "-"], input=json.dumps(req),
                           capture_output=True, text=True, check=True)
        out = json.loads(p.stdout)
        self.ca = os.path.join(dir, "cfssl-ca.pem")
        self.ca_key = os.path.join(dir, "cfssl-ca-key.pem")
        with open(self.ca, "w") as f:
            f.write(out["cert"])
        with open(os.open(self.ca_key, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(out["key"])
        self.bodies = os.path.join(dir, "cfssl-bodies.jsonl")
        with open(self.bodies, "w") as f:
            for path in csr_paths:
                with open(path) as c:
                    f.write(json.dumps({"certificate_request": c.read()}) + "\n")
        self.first_body = json.dumps({"certificate_request": open(csr_paths[0]).read()})

    def start(self, port):
        self.url = "http://127.0.0.1:%d" % port
        self.log = open(os.path.join(self.dir, "cfssl.log"), "w")
        self.proc = subprocess.Popen(["cfssl", "serve", "-address", "127.0.0.1",
                                      "-port", str(port), "-ca", self.ca,
                                      "-ca-key", self.ca_key],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 15
        while True:
            try:
                r = urllib.request.urlopen(urllib.request.Request(
                    self.url + "/api/v1/cfssl/sign", data=self.first_body.encode(),
                    headers={"Content-Type": "application/json"}), timeout=5)
                doc = json.loads(r.read())
                if not doc.get("success") or "BEGIN CERTIFICATE" not in \
                        doc["result"]["certificate"]:
                    raise RuntimeError("cfssl serve did not sign: %s" % doc)
                return self
            except (OSError, ValueError) as e:
                if self.proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError("cfssl serve did not start: %s" % e)
                time.sleep(0.2)

    def stop(self):
        if self.proc is not None:
            self.stop_process(self.proc)


def openssl_speed(seconds):
    """ECDSA P-256 sign/s of `openssl speed`: how fast the machine is right
    now, to set these figures beside baselines.md's."""
    p = subprocess.run(["openssl", "speed", "-seconds", str(seconds), "ecdsap256"],
                       capture_output=True, text=True)
    m = re.search(r"256 bits ecdsa \(nistp256\)\s+\S+s\s+\S+s\s+([\d.]+)\s+([\d.]+)",
                  p.stdout)
    return (float(m.group(1)), float(m.group(2))) if m else (None, None)


def csr_parse_us(build, csr):
    """Microseconds of one csr_parse (DER walk, key checks, the ECDSA
    verification of the self-signature) of a bench CSR, one thread:
    bench-keys csr."""
    p = subprocess.run([os.path.join(build, "tests", "bench", "bench-keys"), "csr",
                        "-n", "4000", "--warmup", "400", csr],
                       capture_output=True, text=True, timeout=120)
    r = parse_result(p.stdout)
    return r["us_per_call"] if p.returncode == 0 and r else None


# The floor: the CPU an issuance cannot do without, from parts measured in
# the same run (see floor()).
FLOOR_CASES = ("sign-2", "issue-2", "issue-tmpfs-2", "rpc-2")


def floor(summary, csr_us):
    """Per certificate, the signer's unavoidable CPU with every check kept:
    the token's signature (sign-2: the CPU of the process that calls
    token_sign, SoftHSM2 being in-process), the CSR's parse and
    verification, the verification of the signed certificate
    (verify-after-sign: one more ECDSA verification, counted as a second
    csr_parse, which is that and a little parsing), one gRPC call
    (rpc-2: the signer's CPU per GetCaChain) and the durable commit
    (issue-2's CPU minus issue-tmpfs-2's: the fsync and the WAL writes).
    authz's, estimated the same way: one csr_parse, two gRPC calls (the
    device's, served; the signer's, made) and a durable commit like the
    journal's. None if a part is missing."""
    def cpu(case, key):
        return summary.get(case, {}).get(key)
    parts = {
        "token_sign (SoftHSM2, in-process)": cpu("sign-2", "median_client_cpu_us"),
        "CSR parse + verification (csr_parse)": statistics.median(csr_us) if csr_us else None,
        "verification of the signed certificate": statistics.median(csr_us) if csr_us else None,
        "a gRPC call served (Signer.GetCaChain)": cpu("rpc-2", "median_cpu_signer_us"),
    }
    d, t = cpu("issue-2", "median_cpu_signer_us"), cpu("issue-tmpfs-2", "median_cpu_signer_us")
    parts["durable commit (journal on disk minus tmpfs)"] = max(0.0, d - t) if d and t else None
    if any(v is None for v in parts.values()):
        return None
    f = {"signer_parts": parts, "signer_us": sum(parts.values()),
         "signer_measured_us": d,
         "authz_us": parts["CSR parse + verification (csr_parse)"] +
         2 * parts["a gRPC call served (Signer.GetCaChain)"] +
         parts["durable commit (journal on disk minus tmpfs)"]}
    # Ceilings: two cores doing only the floor, the client included at
    # what it spends on a bare call of its own (rpc-2) or on Enroll.
    client = cpu("rpc-2", "median_client_cpu_us")
    sign = summary.get("sign-2", {}).get("median_rate")
    if client and sign:
        f["issue_sign_ceiling"] = 2e6 / (f["signer_us"] + client) / sign
    ecl = cpu("enroll-tls-16", "median_client_cpu_us")
    cf = summary.get("cfssl-16", {}).get("median_rate")
    if ecl and cf:
        f["enroll_cfssl_ceiling"] = 2e6 / (f["signer_us"] + f["authz_us"] + ecl) / cf
    return f


def make_devices(pb, prefix, n, bundle):
    """n P-256 devices PREFIX-0000001..: their CSRs (PEM, one after the
    other) into bundle, their registration records (product line widgiot,
    region us-east-1) returned."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    recs = []
    with open(bundle, "wb") as f:
        for i in range(n):
            k = ec.generate_private_key(ec.SECP256R1())
            dev = "%s-%07d" % (prefix, i + 1)
            csr = x509.CertificateSigningRequestBuilder().subject_name(
                x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dev)])).sign(
                k, hashes.SHA256())
            f.write(csr.public_bytes(serialization.Encoding.PEM))
            spki = k.public_key().public_bytes(
                serialization.Encoding.DER,
                serialization.PublicFormat.SubjectPublicKeyInfo)
            recs.append(pb.common.DeviceKeyRecord(
                device_id=dev, spki_der=spki, product_line="widgiot",
                region="us-east-1", line=i + 1))
    return recs


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
        self.devs = [H.Device(ddir, "bench-%04d" % i, "ec-p256") for i in range(1, NDEV + 1)]
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

        # The pool every multi-device case cycles through.
        self.pool = os.path.join(ddir, "pool.pem")
        recs = self.make_devices("pool", self.args.pool, self.pool)
        self.import_records(recs, [s for s in (self.sg, self.tmpfs) if s], self.az)

        # cfssl serve, when a case needs it.
        self.cfssl = None
        if self.args.cfssl:
            self.cfssl = Cfssl(top, self.csrs, self.H.stop_process).start(self.H.free_port())
            self.procs.append(self.cfssl)
        return self

    def pids(self, stack):
        if stack in ("tls", "tls-paced", "unix"):
            return [("signer", self.sg.proc.pid), ("authz", self.az.proc.pid)]
        if stack == "disk":
            return [("signer", self.sg.proc.pid)]
        if stack == "tmpfs" and self.tmpfs is not None:
            return [("signer", self.tmpfs.proc.pid)]
        return []

    def run_cfssl(self, conns, seconds):
        """wrk against cfssl serve: the result dict (bench-issue's keys),
        with cpu_cfssl_us per certificate."""
        cmd = ["wrk", "-t", str(min(conns, 2)), "-c", str(conns),
               "-d", "%ds" % max(1, int(round(seconds))),
               "-s", os.path.join(HERE, "wrk_sign.lua"), self.cfssl.url,
               "--", self.cfssl.bodies]
        pid = self.cfssl.proc.pid
        c0 = proc_cpu(pid)
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
        c1 = proc_cpu(pid)
        r = parse_result(p.stdout)
        if p.returncode != 0 or r is None:
            return None, p.stdout + p.stderr
        r["threads"] = conns
        r["cpu_cfssl_us"] = (c1 - c0) * 1e6 / r["calls"] if r["calls"] else -1
        r["rss_cfssl_kb"] = proc_rss_kb(pid)
        if r["errors"]:
            return None, "wrk: %d errors against cfssl serve" % r["errors"]
        return r, None

    def command(self, case, seconds, rate=None):
        name, mode, threads, stack, ndev, _ = case
        b = [self.args.bench, mode, "--seconds", str(seconds), "--threads", str(threads)]
        for nm, pid in self.pids(stack):
            b += ["--cpu-pid", "%s=%d" % (nm, pid)]
        if rate:
            b += ["--rate", "%.1f" % rate]
        csrs = ["--csr", self.csrs[0]] if ndev == 1 else ["--csr-pool", self.pool]
        if mode == "chain":
            return b + ["--target", self.sg.issuance, "--product-line", "widgiot",
                        "--region", "us-east-1"], None
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
        if stack in ("tls", "tls-paced"):
            return b + ["--target", self.az.device, "--ca-file", self.root_pem,
                        "--key-prefix", prefix] + csrs, None
        return b + ["--target", self.az.admin, "--key-prefix", prefix] + csrs, None

    def make_devices(self, prefix, n, bundle):
        return make_devices(self.pb, prefix, n, bundle)

    def import_records(self, recs, signers, authz=None):
        """recs into each signer's RegisterDeviceKeys and authz's
        ImportDevices, 5,000 per call."""
        pb = self.pb
        calls = [(sg, "CaAdmin", "RegisterDeviceKeys", pb.ca_admin.RegisterDeviceKeysRequest)
                 for sg in signers]
        if authz is not None:
            calls.append((authz, "Registry", "ImportDevices", pb.registry.ImportDevicesRequest))
        for i in range(0, len(recs), 5000):
            part = recs[i:i + 5000]
            for daemon, service, method, req in calls:
                admin = daemon.admin_client()
                r = admin.call(service, method, req(records=part), pb.common.ImportResult,
                               timeout=300)
                admin.close()
                if r.imported != len(part):
                    raise RuntimeError("%s.%s: %s" % (service, method, r))

    def fleet(self, n, threads=16):
        """n distinct devices, made and imported now, each enrolling once
        over TLS: the bench-issue result."""
        fdir = os.path.join(self.top, "fleet")
        os.makedirs(fdir, exist_ok=True)
        bundle = os.path.join(fdir, "csrs.pem")
        t0 = time.time()
        recs = self.make_devices("fleet", n, bundle)
        made = time.time() - t0
        self.import_records(recs, [self.sg], self.az)
        cmd = [self.args.bench, "enroll", "--seconds", "3600", "--threads", str(threads),
               "--warmup", "0", "--target", self.az.device, "--ca-file", self.root_pem,
               "--key-prefix", "fleet-%d" % int(time.time() * 1000),
               "--csr-bundle", bundle]
        for nm, pid in self.pids("tls"):
            cmd += ["--cpu-pid", "%s=%d" % (nm, pid)]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=3600 + 120)
        r = parse_result(p.stdout)
        if p.returncode != 0 or r is None:
            raise RuntimeError("fleet run failed: %s" % (p.stdout + p.stderr)[-500:])
        r["devices"] = n
        r["keys_made_s"] = round(made, 1)
        return r

    def memory(self, n, threads=16):
        """n enrollments at `threads` threads (over the pool): the
        resident sets of the signer and authz before and after."""
        before = {nm: proc_rss_kb(pid) for nm, pid in self.pids("tls")}
        case = ("memory", "enroll", threads, "tls", threads, "")
        cmd, _ = self.command(case, 3600)
        cmd += ["--calls", str(max(1, n // threads))]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=3600 + 120)
        r = parse_result(p.stdout)
        if p.returncode != 0 or r is None:
            raise RuntimeError("memory run failed: %s" % (p.stdout + p.stderr)[-500:])
        after = {nm: proc_rss_kb(pid) for nm, pid in self.pids("tls")}
        r["rss_before_kb"] = before
        r["rss_after_kb"] = after
        return r

    def cascade(self):
        """Issue 13's lifecycle-at-scale case, on everything the run has
        issued: rotate the region's issuing CA, then time `secretfree ca
        revoke --cascade` of the old generation (every certificate it
        issued) and, from the same start, until its complete CRL (shard 0)
        lists them all. Last, since it revokes the CA the cases use."""
        H, pb = self.H, self.pb
        ca = "us-east-1.widgiot"
        admin = self.sg.admin_client()
        old = admin.call("CaAdmin", "GetCa", pb.ca_admin.GetCaRequest(name=ca),
                         pb.common.CaInfo)
        cli = H.Cli(self.top, {"SECRETFREE_SIGNER": self.sg.admin,
                               "SECRETFREE_AUTHZ": self.az.admin})
        p = cli("ca", "rotate", ca)
        if p.returncode != 0:
            raise RuntimeError("ca rotate: %s" % (p.stdout + p.stderr)[-500:])
        t0 = time.time()
        p = cli("ca", "revoke", ca, "--generation", old.generation, "--reason",
                "key-compromise", "--cascade", timeout=3600)
        t_revoke = time.time() - t0
        m = re.search(r"revoked 1 CA and (\d+) certificates", p.stdout)
        if p.returncode != 0 or not m:
            raise RuntimeError("ca revoke --cascade: %s" % (p.stdout + p.stderr)[-500:])
        n = int(m.group(1))
        # The complete CRL as authz fetches it (Signer.GetCrl, DER only):
        # CaAdmin.GetCrl sends PEM beside it, twice the size, past gRPC's
        # 16 MiB at some 150,000 entries (signer/README.md, "CRLs").
        from cryptography import x509
        crl_cli = H.Client(self.sg.issuance, options=[
            ("grpc.max_receive_message_length", 64 << 20)])
        listed = 0
        deadline = time.time() + 600
        while time.time() < deadline:
            r = crl_cli.call("Signer", "GetCrl", pb.signer.GetCrlRequest(
                ca_name=ca, generation=old.generation), pb.signer.GetCrlResponse,
                timeout=120)
            listed = len(x509.load_der_x509_crl(r.crl_der))
            if listed >= n:
                break
            time.sleep(0.1)
        crl_cli.close()
        t_crl = time.time() - t0
        admin.close()
        return {"certificates": n, "revoke_s": round(t_revoke, 2),
                "crl_s": round(t_crl, 2), "crl_entries": listed}

    def stop(self):
        for p in reversed(self.procs):
            try:
                p.stop()
            except Exception:
                pass
        if not self.args.keep:
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


def median_of(rs, key):
    vals = [r[key] for r in rs if key in r and r[key] is not None and r[key] >= 0]
    return statistics.median(vals) if vals else None


# Issue 13's targets: (label, how the figure is read, comparison, bound).
def targets(summary, ratios, extra):
    out = []

    def add(label, value, ok_if, bound):
        if value is None:
            out.append((label, None, None, bound, ok_if))
        else:
            out.append((label, value, (value >= bound) if ok_if == ">=" else (value <= bound),
                        bound, ok_if))

    r = ratios.get("enroll TLS/cfssl 16")
    add("Enroll TLS, 16 clients / cfssl serve, 16 connections", r and r["median"], ">=", 0.4)
    s = summary.get("enroll-tls-16", {})
    add("signer CPU per enrollment at 16 threads (us)", s.get("median_cpu_signer_us"), "<=", 300)
    add("authz CPU per enrollment at 16 threads (us)", s.get("median_cpu_authz_us"), "<=", 300)
    r = ratios.get("issue/sign 2 threads")
    add("Signer.Issue / token_sign, 2 threads", r and r["median"], ">=", 0.3)
    s = summary.get("enroll-tls-16-paced", {})
    add("p99 / p50 at 80% of peak (Enroll TLS, 16 threads)", s.get("median_p99_over_p50"),
        "<=", 3.0)
    c = extra.get("cascade")
    if c and c["certificates"] >= 100000:
        # A full run revokes more than 100,000 (the memory case's too):
        # the time scaled to 100,000, as revocation and CRL both grow
        # linearly with the certificates.
        add("cascade + CRL, per 100,000 (s; %d in %.2f s)" % (c["certificates"], c["crl_s"]),
            c["crl_s"] * 100000.0 / c["certificates"], "<=", 10)
    else:
        add("cascade revocation of 100,000 certificates + CRL (s) (a full run issues them)",
            None, "<=", 10)
    m = extra.get("memory")
    if m and m["calls"] >= 100000:
        growth = max((m["rss_after_kb"][k] - m["rss_before_kb"][k]) / 1024.0
                     for k in m["rss_after_kb"])
        add("RSS growth over %d enrollments, worst daemon (MB)" % m["calls"], growth, "<=", 10)
    else:
        add("RSS growth over 100,000 enrollments (--memory 100000) (MB)", None, "<=", 10)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5, help="repetitions of every case (default 5)")
    ap.add_argument("--seconds", type=float, default=3.0, help="seconds per run (default 3)")
    ap.add_argument("--quick", action="store_true",
                    help="2 repetitions of 1 s, a fleet of 1,000, no memory case")
    ap.add_argument("--fleet", type=int, default=None,
                    help="distinct devices enrolling once each (default 10000; 0: none)")
    ap.add_argument("--memory", type=int, default=None,
                    help="enrollments of the memory case (default 100000; 0: none)")
    ap.add_argument("--pool", type=int, default=POOL,
                    help="bench devices the sustained cases cycle through (default %d;"
                    " a multiple of 64)" % POOL)
    ap.add_argument("--no-cascade", dest="cascade", action="store_false",
                    help="leave out the last case: revoking, with --cascade, the"
                    " issuing CA generation everything was issued from")
    ap.add_argument("--json-out", help="write every run and the summary here")
    ap.add_argument("--build", default=os.environ.get("SF_BUILD_ROOT") or os.path.join(SRC, "build"))
    ap.add_argument("--bench", help="the bench-issue program (default BUILD/tests/bench/bench-issue)")
    ap.add_argument("--only", help="comma-separated case names")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directories")
    args = ap.parse_args()
    if args.quick:
        args.runs, args.seconds = 2, 1.0
        args.fleet = 1000 if args.fleet is None else args.fleet
        args.memory = 0 if args.memory is None else args.memory
    args.fleet = 10000 if args.fleet is None else args.fleet
    args.memory = 100000 if args.memory is None else args.memory
    if args.pool < 64 or args.pool % 64:
        sys.exit("run_bench: --pool must be a positive multiple of 64")
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
    args.cfssl = any(c[1] == "cfssl" for c in cases)
    args.floor = all(any(c[0] == n for c in cases) for n in FLOOR_CASES)
    if args.cfssl:
        for tool in ("cfssl", "wrk"):
            if shutil.which(tool) is None:
                sys.exit("run_bench: %s is not installed (scripts/install-deps installs it)" % tool)

    st = Setup(args)
    runs = {c[0]: [] for c in cases}
    speed = []
    csr_us = []
    failures = []
    extra = {}
    t0 = time.time()
    load = [os.getloadavg()[0]]
    try:
        print("setting up: tokens, signers, CA hierarchy, authz, %d + %d bench devices%s ..." % (
            args.pool, NDEV, ", cfssl serve" if args.cfssl else ""), flush=True)
        st.start()
        for rep in range(args.runs):
            s, v = openssl_speed(1)
            speed.append({"sign": s, "verify": v})
            if args.floor:
                k = csr_parse_us(args.build, st.csrs[0])
                if k is not None:
                    csr_us.append(k)
            peak = {}
            for c in cases:
                err = None
                if c[1] == "cfssl":
                    r, err = st.run_cfssl(c[2], args.seconds)
                else:
                    rate = None
                    if c[3] == "tls-paced":
                        if "enroll-tls-16" not in peak:
                            continue
                        rate = PACED_SHARE * peak["enroll-tls-16"]
                    cmd, env = st.command(c, args.seconds, rate)
                    if cmd is None:
                        continue
                    p = subprocess.run(cmd, capture_output=True, text=True, env=env,
                                       timeout=args.seconds + 120)
                    r = parse_result(p.stdout)
                    if p.returncode != 0 or r is None:
                        err = "rc=%d %s" % (p.returncode, p.stderr.strip()[-500:])
                        r = None
                if r is None:
                    failures.append((c[0], rep, err))
                    print("  %-20s run %d FAILED: %s" % (c[0], rep + 1, err[-300:]), flush=True)
                    continue
                r["rep"] = rep
                if r["p50_us"]:
                    r["p99_over_p50"] = r["p99_us"] / r["p50_us"]
                runs[c[0]].append(r)
                peak[c[0]] = r["rate"]
                cpu = " ".join("%s %s us" % (k[4:-3], v) for k, v in sorted(r.items())
                               if k.startswith("cpu_"))
                print("  %-20s run %d: %8.1f /s  p50 %6d us  p99 %6d us  %s" % (
                    c[0], rep + 1, r["rate"], r["p50_us"], r["p99_us"],
                    ("cpu/cert: " + cpu) if cpu else ""), flush=True)
        if args.fleet > 0:
            print("fleet: %d distinct devices, each enrolling once, 16 threads ..." % args.fleet,
                  flush=True)
            extra["fleet"] = st.fleet(args.fleet)
            print("  fleet: %(calls)d enrollments %(rate).1f /s p50 %(p50_us)d us"
                  " p99 %(p99_us)d us" % extra["fleet"], flush=True)
        if args.memory > 0:
            print("memory: %d enrollments at 16 threads ..." % args.memory, flush=True)
            extra["memory"] = st.memory(args.memory)
            print("  memory: %d enrollments, RSS before %s after %s kB" % (
                extra["memory"]["calls"], extra["memory"]["rss_before_kb"],
                extra["memory"]["rss_after_kb"]), flush=True)
        if args.cascade:
            print("cascade: rotate us-east-1.widgiot, revoke the old generation with"
                  " --cascade ...", flush=True)
            extra["cascade"] = st.cascade()
            print("  cascade: %(certificates)d certificates revoked in %(revoke_s).2f s,"
                  " CRL listing them after %(crl_s).2f s" % extra["cascade"], flush=True)
    except Exception as e:
        failures.append(("setup", -1, "%s: %s" % (type(e).__name__, e)))
        print("FAILED: %s: %s" % (type(e).__name__, e), flush=True)
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
            "median_p99_over_p50": median_of(rs, "p99_over_p50"),
            "median_cpu_signer_us": median_of(rs, "cpu_signer_us"),
            "median_cpu_authz_us": median_of(rs, "cpu_authz_us"),
            "median_cpu_cfssl_us": median_of(rs, "cpu_cfssl_us"),
            "median_client_cpu_us": median_of(rs, "client_cpu_us"),
            "runs": len(rs),
        }
        if c[3] == "tls-paced":
            summary[c[0]]["median_target_rate"] = median_of(rs, "target_rate")
    ratios = {}
    for name, num, den, what in RATIOS:
        byrep_n = {r["rep"]: r["rate"] for r in runs.get(num, [])}
        byrep_d = {r["rep"]: r["rate"] for r in runs.get(den, [])}
        per = [byrep_n[k] / byrep_d[k] for k in sorted(byrep_n) if k in byrep_d and byrep_d[k]]
        if per:
            ratios[name] = {"median": statistics.median(per), "min": min(per),
                            "max": max(per), "per_run": per, "num": num, "den": den,
                            "what": what}
    if "fleet" in extra and "enroll-tls-16" in summary:
        ratios["fleet/enroll TLS 16"] = {
            "median": extra["fleet"]["rate"] / summary["enroll-tls-16"]["median_rate"],
            "what": "%d distinct devices once each vs the pool's devices enrolling again and again"
            % extra["fleet"]["devices"]}
    # Per-call costs at one thread (µs of wall time per call, from the medians).
    costs = {}

    def us(case):
        return 1e6 / summary[case]["median_rate"] if case in summary else None
    pairs = [("token_sign", "sign-1", None),
             ("Signer.Issue", "issue-1", None),
             ("Signer.Issue minus token_sign", "issue-1", "sign-1"),
             ("journal fsync share (disk minus tmpfs)", "issue-1", "issue-tmpfs-1"),
             ("Enroll TLS", "enroll-tls-1", None),
             ("authz's share (Enroll TLS minus Issue)", "enroll-tls-1", "issue-1"),
             ("cfssl serve", "cfssl-1", None)]
    for label, a, b in pairs:
        if us(a) is not None and (b is None or us(b) is not None):
            costs[label] = us(a) - (us(b) if b else 0)
    tg = targets(summary, ratios, extra)
    fl = floor(summary, csr_us) if args.floor else None

    def cpu(v):
        return "%.0f" % v if v is not None else "-"

    sp = [x["sign"] for x in speed if x["sign"]]
    print()
    print("secretfree issuance benchmarks, %s, %d runs x %.0f s per case, %s" % (
        datetime.date.today().isoformat(), args.runs, args.seconds, platform.node()))
    if sp:
        print("machine right now: openssl speed ecdsap256 sign %.0f/s (median; baselines.md: 54,000);"
              " load average %.1f at the start, %.1f at the end" % (statistics.median(sp), load[0], load[-1]))
    print()
    print("%-20s %-46s %3s %8s %15s %7s %7s %6s %6s %6s" % (
        "case", "what", "thr", "median/s", "min..max", "p50 us", "p99 us",
        "cpu:sg", "authz", "cfssl"))
    for c in cases:
        s = summary.get(c[0])
        if s is None:
            print("%-20s %-46s %3d %8s" % (c[0], c[5], c[2], "n/a"))
            continue
        print("%-20s %-46s %3d %8s %15s %7.0f %7.0f %6s %6s %6s" % (
            c[0], c[5], c[2], fmt_rate(s["median_rate"]),
            "%s..%s" % (fmt_rate(s["min_rate"]), fmt_rate(s["max_rate"])),
            s["median_p50_us"], s["median_p99_us"], cpu(s["median_cpu_signer_us"]),
            cpu(s["median_cpu_authz_us"]), cpu(s["median_cpu_cfssl_us"])))
    print("(cpu: CPU microseconds per certificate of the signer, authz and cfssl serve,"
          " from /proc over the timed window)")
    f = extra.get("fleet")
    if f:
        print()
        print("fleet: %d distinct devices (keys made in %.1f s, imported into both daemons),"
              " each enrolling once over TLS, 16 threads: %.1f /s, p50 %d us, p99 %d us,"
              " cpu signer %s us, authz %s us per certificate" % (
                  f["devices"], f["keys_made_s"], f["rate"], f["p50_us"], f["p99_us"],
                  f.get("cpu_signer_us"), f.get("cpu_authz_us")))
    c = extra.get("cascade")
    if c:
        print()
        print("cascade: `ca revoke --cascade` of the issuing CA's old generation: %d"
              " certificates revoked in %.2f s; its CRL listed all %d after %.2f s"
              % (c["certificates"], c["revoke_s"], c["crl_entries"], c["crl_s"]))
    m = extra.get("memory")
    if m:
        print()
        print("memory: %d enrollments at 16 threads (%.1f /s): resident set %s" % (
            m["calls"], m["rate"], ", ".join(
                "%s %.1f -> %.1f MB (%+.1f)" % (k, m["rss_before_kb"][k] / 1024.0,
                                                 m["rss_after_kb"][k] / 1024.0,
                                                 (m["rss_after_kb"][k] - m["rss_before_kb"][k])
                                                 / 1024.0)
                for k in sorted(m["rss_after_kb"]))))
    print()
    print("ratios (median of the per-repetition ratios; min..max)")
    for name, r in ratios.items():
        if "min" in r:
            print("  %-34s %6.2f  (%.2f..%.2f)  %s" % (name, r["median"], r["min"], r["max"],
                                                     r["what"]))
        else:
            print("  %-34s %6.2f  %s" % (name, r["median"], r["what"]))
    print()
    print("wall time per call at one thread, from the medians")
    for k, v in costs.items():
        print("  %-44s %7.0f us" % (k, v))
    if fl:
        print()
        print("floor: the signer's CPU per certificate that no change to secretfree can remove"
              " with every check kept,")
        print("from parts measured in this run (medians)")
        for k, v in fl["signer_parts"].items():
            print("  %-50s %7.0f us" % (k, v))
        print("  %-50s %7.0f us   (measured: %.0f us, target <= 300)" % (
            "sum: the signer's floor", fl["signer_us"], fl["signer_measured_us"]))
        print("  %-50s %7.0f us   (target <= 300)" % (
            "authz's, estimated (csr_parse, 2 calls, a commit)", fl["authz_us"]))
        if "issue_sign_ceiling" in fl:
            print("  %-50s %7.2f      (target >= 0.3)" % (
                "ceiling of Signer.Issue / token_sign, 2 threads", fl["issue_sign_ceiling"]))
        if "enroll_cfssl_ceiling" in fl:
            print("  %-50s %7.2f      (target >= 0.4)" % (
                "ceiling of Enroll TLS / cfssl serve, 16", fl["enroll_cfssl_ceiling"]))
        print("  (a ceiling: two cores spending only the floors, the client only what it"
              " measured)")
    print()
    print("issue 13's targets")
    for label, value, ok, bound, op in tg:
        if value is None:
            print("  %-58s %8s  (not measured in this run)" % (label, "-"))
        else:
            print("  %-58s %8.2f  %s %s  %s" % (label, value, op, bound,
                                               "met" if ok else "NOT met"))
    if failures:
        print()
        print("FAILED runs: %d" % len(failures))
        for f in failures:
            print("  %s run %d: %s" % (f[0], f[1] + 1, f[2]))

    if args.json_out:
        doc = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
               "host": platform.node(), "cpus": os.cpu_count(),
               "runs_per_case": args.runs, "seconds_per_run": args.seconds,
               "pool_devices": args.pool,
               "elapsed_s": round(time.time() - t0, 1),
               "openssl_speed_ecdsap256": speed, "loadavg_start_end": load,
               "cases": summary, "ratios": ratios, "per_call_us_1thread": costs,
               "targets": [{"target": t[0], "value": t[1], "met": t[2], "bound": t[3],
                            "op": t[4]}
                           for t in tg],
               "fleet": extra.get("fleet"), "memory": extra.get("memory"),
               "cascade": extra.get("cascade"), "csr_parse_us": csr_us, "floor": fl,
               "runs": runs, "failures": failures}
        with open(args.json_out, "w") as f:
            json.dump(doc, f, indent=2)
        print("\nJSON: %s" % args.json_out)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
