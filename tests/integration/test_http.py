#!/usr/bin/python3
"""The HTTP front doors (issue 12), with the real signer and authz on
SoftHSM2 and stock clients only (curl, openssl, base64):

- the reference's REST call exactly as its device sends it,
  `curl -X POST -H "device-csr: $(base64 -w0 csr.pem)" .../new`, over TLS,
  for every row of the status table: 200 (the reference's JSON, a
  certificate for the registered key that openssl verifies up to the
  root; a retry gets the same one), 400 (not base64, not a CSR, no CSR,
  both header and body, a body of another type), 403 (another key, a
  disabled device), 404 (unknown device), 413 (a CSR over csr_max_bytes in
  the header, a body over the route's limit), 429 (the device's rate),
  503 (the signer stopped, with Retry-After); the CSR as a PEM or DER
  body; 500 is not reachable from outside (see below);
- latent issuance: the signer paused (SIGSTOP) past enroll_wait_ms gives
  202 with the enrollment id, Location and Retry-After; GET
  /enrollments/{id} says 202 until the certificate is there, then serves
  it whole and in Range chunks whose concatenation has the SHA-256 and
  length of the headers; a range past the end is 416; the same CSR again
  gets the same certificate; an orphan (the registry locked past its
  busy timeout: 202, then the failure on GET with its idempotency key)
  is recovered by posting the same CSR again: the signer's certificate,
  not a second one;
- a device that enrolls over gRPC fetches the same certificate over REST;
- EST (RFC 7030) with curl and openssl: cacerts (certs-only PKCS#7,
  base64, with and without a CA label), csrattrs, simpleenroll
  (registered key only: another key 403, unknown 404, a wrong content
  type 400), simplereenroll over mutual TLS with the current certificate
  (none or another device's: 403; same key; a new key only with
  current-key-signature), the renewal PENDING_ACK until the new
  certificate's first use over TLS acknowledges it;
- plain HTTP: the front doors refused (403) on a plain listener unless
  plain_front_doors, which a non-loopback address refuses at start;
- a slow client cannot hold the listener: idle connections are closed
  after connection_timeout_seconds while enrollments go on, a trickled
  body is cut at body_timeout_ms, oversized headers get 431."""
import base64
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import tap  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from sfharness import (BUILD, Device, Stack, TempDir, free_port,  # noqa: E402
                       openssl_verify, protos, run, run_bytes, split_pem)

pb = protos()
C, P, R = pb.common, pb.provisioning, pb.registry
WAIT_MS = 2000


def write(path, data):
    with open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    return path


class Resp:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return {}

    def __repr__(self):
        return "%d %r %r" % (self.status, self.headers, self.body[:300])


class Env:
    def __init__(self, tmp):
        self.tmp = tmp
        self.https_port = free_port()
        self.st = Stack(tmp, regions=("us-east-1",), authz_kw={"device_max": 3})
        self.root = write(os.path.join(tmp, "root.pem"), self.st.root_pem)
        self.st.authz.stop()
        self.st.authz.write_conf(
            authz_extra="tls_client_ca = %s\n" % self.root,
            http_extra=("tls_listen = 127.0.0.1:%d\nenroll_wait_ms = %d\n"
                        "retry_after_seconds = 1\nconnection_timeout_seconds = 3\n"
                        % (self.https_port, WAIT_MS)))
        self.st.authz.start()
        self.base = "https://localhost:%d" % self.https_port
        self.n = 0

    def curl(self, path, *args, base=None, shell_pre=""):
        """curl (stock) against the HTTPS listener; (status, headers, body)."""
        self.n += 1
        hdr = os.path.join(self.tmp, "h%d" % self.n)
        body = os.path.join(self.tmp, "b%d" % self.n)
        cmd = ["curl", "-sS", "--cacert", self.root, "-D", hdr, "-o", body,
               "--max-time", "60"] + list(args) + [(base or self.base) + path]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            return Resp(0, {}, p.stderr.encode())
        return self.read(hdr, body)

    def sh(self, script):
        """A shell line as the reference's device runs it; -D/-o into files."""
        self.n += 1
        hdr = os.path.join(self.tmp, "h%d" % self.n)
        body = os.path.join(self.tmp, "b%d" % self.n)
        p = subprocess.run(["bash", "-c", script.format(hdr=hdr, body=body, root=self.root,
                                                        base=self.base)],
                           capture_output=True, text=True, cwd=self.tmp)
        if p.returncode != 0:
            return Resp(0, {}, p.stderr.encode())
        return self.read(hdr, body)

    @staticmethod
    def read(hdr, body):
        with open(hdr, "rb") as f:
            blocks = [b for b in f.read().split(b"\r\n\r\n") if b.strip()]
        lines = blocks[-1].decode().split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        with open(body, "rb") as f:
            return Resp(status, headers, f.read())

    def new_csr_file(self, dev, name=None, der=False):
        return write(os.path.join(self.tmp, (name or dev.id) + (".der" if der else ".csr.pem")),
                     dev.csr(der=der))

    def post_new(self, csr_file):
        """The reference's device: the CSR, base64 of its PEM, in device-csr."""
        return self.sh('curl -sS --cacert {root} -D {hdr} -o {body} -X POST '
                       '-H "device-csr: $(base64 -w0 %s)" {base}/new' % csr_file)


def key_of(cert_pem):
    return x509.load_pem_x509_certificate(cert_pem.encode()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def certs_of(env, p7_b64):
    """openssl pkcs7 -print_certs of a base64 certs-only PKCS#7."""
    f = write(os.path.join(env.tmp, "p7.b64"), p7_b64)
    der = run_bytes(["openssl", "base64", "-d", "-in", f])
    g = write(os.path.join(env.tmp, "p7.der"), der)
    out = run(["openssl", "pkcs7", "-inform", "DER", "-in", g, "-print_certs"]).stdout
    return split_pem(out)


def certs_list(st, device_id):
    return st.aadmin.call("Registry", "ListCertificates",
                          R.ListDeviceCertificatesRequest(device_id=device_id),
                          R.ListDeviceCertificatesResponse).certificates


def wait_for(fn, timeout=30, step=0.25):
    deadline = time.time() + timeout
    got = fn()
    while not got and time.time() < deadline:
        time.sleep(step)
        got = fn()
    return got


# ---- REST: the status table ----

def test_rest_ok(env, dev):
    csr = env.new_csr_file(dev)
    r = env.post_new(csr)
    tap.eq(r.status, 200, "POST /new with device-csr (base64 of the PEM): 200", r)
    tap.ok(r.headers.get("content-type", "").startswith("application/json"),
           "the answer is JSON", r.headers)
    j = r.json()
    tap.ok("Certificate" in j and "CertificateChain" in j,
           "the reference's fields Certificate and CertificateChain", j.keys())
    ok, out = openssl_verify(env.tmp, j.get("CertificateChain", ""), j.get("Certificate", ""))
    tap.ok(ok, "openssl verify: the certificate chains up to the root", out)
    tap.eq(key_of(j["Certificate"]), dev.spki_der(), "the certificate is for the registered key")
    cn = x509.load_pem_x509_certificate(j["Certificate"].encode()).subject.get_attributes_for_oid(
        x509.NameOID.COMMON_NAME)[0].value
    tap.eq(cn, dev.id, "its CN is the device id")
    again = env.post_new(csr)
    tap.eq((again.status, again.json().get("Certificate")), (200, j["Certificate"]),
           "the same request again: the same certificate")
    return j


def test_rest_bodies(env, dev, dev2):
    pem = env.new_csr_file(dev, "body")
    r = env.curl("/new", "-X", "POST", "-H", "Content-Type: application/x-pem-file",
                 "--data-binary", "@" + pem)
    tap.eq(r.status, 200, "POST /new with a PEM body (application/x-pem-file): 200", r)
    tap.eq(key_of(r.json().get("Certificate", "")) if r.status == 200 else b"",
           dev.spki_der(), "a certificate for the registered key")
    der = env.new_csr_file(dev2, "body", der=True)
    r2 = env.curl("/new", "-X", "POST", "-H", "Content-Type: application/pkcs10",
                  "--data-binary", "@" + der)
    tap.eq(r2.status, 200, "POST /new with a DER body (application/pkcs10): 200", r2)
    tap.eq(key_of(r2.json().get("Certificate", "")) if r2.status == 200 else b"",
           dev2.spki_der(), "a certificate for that device's key")


def test_rest_400(env, dev):
    r = env.curl("/new", "-X", "POST", "-H", "device-csr: not base64!")
    tap.eq(r.status, 400, "device-csr that is not base64: 400", r)
    tap.eq(r.json().get("error"), "bad_request", "a JSON error body names it")
    tap.ok("base64" in r.json().get("message", ""), "and says why", r.body)
    junk = base64.b64encode(b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n").decode()
    r = env.curl("/new", "-X", "POST", "-H", "device-csr: " + junk)
    tap.eq(r.status, 400, "device-csr that is base64 of no CSR: 400", r)
    r = env.curl("/new", "-X", "POST")
    tap.eq(r.status, 400, "no CSR at all: 400", r)
    csr = env.new_csr_file(dev, "both")
    r = env.sh('curl -sS --cacert {root} -D {hdr} -o {body} -X POST '
               '-H "device-csr: $(base64 -w0 %s)" -H "Content-Type: application/x-pem-file" '
               '--data-binary @%s {base}/new' % (csr, csr))
    tap.eq(r.status, 400, "a CSR in both header and body: 400", r)
    r = env.curl("/new", "-X", "POST", "-H", "Content-Type: application/json",
                 "--data-binary", "@" + csr)
    tap.eq(r.status, 400, "a body of another Content-Type: 400", r)
    tap.ok("Content-Type" in r.json().get("message", ""), "naming the content types", r.body)


def test_rest_403_404(env, dev, other):
    # A CSR for dev's id made with another device's key.
    impostor = Device(env.tmp, "impostor")
    f = write(os.path.join(env.tmp, "impostor.csr.pem"), impostor.csr(cn=dev.id))
    r = env.post_new(f)
    tap.eq(r.status, 403, "a CSR with another key than the registered one: 403", r)
    tap.eq(r.json().get("error"), "forbidden", "error forbidden")
    env.st.aadmin.call("Registry", "DisableDevice", R.SetDeviceStateRequest(
        device_id=other.id, reason="test"), R.Device)
    r = env.post_new(env.new_csr_file(other))
    tap.eq(r.status, 403, "a disabled device: 403", r)
    tap.ok("disabled" in r.json().get("message", ""), "saying it is disabled", r.body)
    env.st.aadmin.call("Registry", "EnableDevice", R.SetDeviceStateRequest(
        device_id=other.id), R.Device)
    ghost = Device(env.tmp, "ghost-7")
    r = env.post_new(env.new_csr_file(ghost))
    tap.eq(r.status, 404, "a device id nobody registered: 404", r)
    tap.eq(r.json().get("error"), "not_found", "error not_found")


def test_rest_413(env, dev):
    big = os.path.join(env.tmp, "big.csr.pem")
    san = ",".join("DNS:h%05d.example.com" % i for i in range(900))
    subprocess.run(["openssl", "req", "-new", "-key", dev.key, "-subj", "/CN=%s" % dev.id,
                    "-addext", "subjectAltName=" + san, "-out", big], check=True)
    tap.ok(os.path.getsize(big) > 16384, "a CSR over csr_max_bytes (16384)",
           os.path.getsize(big))
    r = env.post_new(big)
    tap.eq(r.status, 413, "that CSR in device-csr: 413", r)
    tap.eq(r.json().get("error"), "too_large", "error too_large")
    blob = write(os.path.join(env.tmp, "blob"), b"A" * 100000)
    # Expect: 100-continue, as a client sending a big body should: the
    # 413 comes instead of the 100 and nothing is sent (without it the
    # client may be still sending when the refusal closes the connection,
    # and it sees a reset, not the 413).
    r = env.curl("/new", "-X", "POST", "-H", "Content-Type: application/pkcs10",
                 "-H", "Expect: 100-continue", "--data-binary", "@" + blob)
    tap.eq(r.status, 413, "a 100 kB body: 413 before it is read", r)
    tap.eq(r.json().get("error"), "too_large", "as a JSON error too")


def test_rest_409_429(env, dev):
    # dev has two live certificates (test_rest_ok, test_rest_bodies): the
    # signer's cap (device_live_certificates = 2); its rate is three per hour.
    r = env.post_new(env.new_csr_file(dev, "third"))
    tap.eq(r.status, 409, "a third certificate while two are live: 409 (the signer's cap)", r)
    tap.eq(r.json().get("error"), "conflict", "error conflict")
    r = env.post_new(env.new_csr_file(dev, "fourth"))
    tap.eq(r.status, 429, "a fourth new CSR of the device within the hour: 429", r)
    tap.eq(r.headers.get("retry-after"), "1", "with Retry-After")
    tap.eq(r.json().get("error"), "too_many_requests", "error too_many_requests")


def test_rest_503(env, dev):
    env.st.signer.stop()
    try:
        r = env.post_new(env.new_csr_file(dev))
        tap.eq(r.status, 503, "the signer stopped: 503", r)
        tap.eq(r.headers.get("retry-after"), "1", "with Retry-After")
        tap.eq(r.json().get("error"), "unavailable", "error unavailable")
    finally:
        env.st.signer.start()
    r = wait_for(lambda: (lambda x: x if x.status == 200 else None)(
        env.post_new(os.path.join(env.tmp, dev.id + ".csr.pem"))), timeout=30, step=1)
    tap.ok(r is not None, "the signer back: the same CSR gets its certificate")


# ---- latent issuance and retrieval ----

def fetch(env, eid, *args):
    return env.curl("/enrollments/" + eid, *args)


def test_latent(env, dev):
    csr = env.new_csr_file(dev)
    env.st.signer.signal(signal.SIGSTOP)
    try:
        t0 = time.time()
        r = env.post_new(csr)
        took = time.time() - t0
        tap.eq(r.status, 202, "the signer paused past enroll_wait_ms: 202", r)
        tap.ok(WAIT_MS / 1000 - 0.2 <= took < WAIT_MS / 1000 + 3,
               "after about enroll_wait_ms (%.1f s)" % took)
        eid = r.json().get("EnrollmentId", "")
        tap.ok(eid.startswith("enr-") and len(eid) == 36, "with the enrollment id", r.body)
        tap.eq(r.headers.get("location"), "/enrollments/" + eid, "Location names it")
        tap.eq(r.headers.get("retry-after"), "1", "and Retry-After")
        g = fetch(env, eid)
        tap.eq(g.status, 202, "GET /enrollments/{id} while it runs: 202", g)
    finally:
        env.st.signer.signal(signal.SIGCONT)
    g = wait_for(lambda: (lambda x: x if x.status == 200 else None)(fetch(env, eid)))
    tap.ok(g is not None, "then 200 once the signer has answered")
    whole = g.body
    total = int(g.headers.get("x-bundle-length", "-1"))
    sha = g.headers.get("x-bundle-sha256", "")
    tap.eq(total, len(whole), "X-Bundle-Length is the bundle's length")
    tap.eq(sha, hashlib.sha256(whole).hexdigest(), "X-Bundle-SHA256 is its SHA-256")
    tap.eq(g.headers.get("repr-digest"),
           "sha-256=:%s:" % base64.b64encode(hashlib.sha256(whole).digest()).decode(),
           "Repr-Digest (RFC 9530) too")
    tap.ok(g.headers.get("content-type", "").startswith("application/pem-certificate-chain"),
           "application/pem-certificate-chain", g.headers)
    certs = split_pem(whole.decode())
    tap.eq(key_of(certs[0]), dev.spki_der(), "the leaf is for the device's key")
    ok, out = openssl_verify(env.tmp, "".join(certs[1:]), certs[0])
    tap.ok(ok, "and verifies with the chain that follows it", out)
    # In chunks, as a device with a small buffer: curl -r.
    parts, off, chunk = [], 0, 500
    statuses, shas = set(), set()
    while off < total:
        p = fetch(env, eid, "-r", "%d-%d" % (off, off + chunk - 1))
        statuses.add(p.status)
        if p.status != 206 or not p.body:
            break
        shas.add(p.headers.get("x-bundle-sha256"))
        parts.append(p.body)
        off += len(p.body)
    joined = b"".join(parts)
    tap.eq(statuses, {206}, "every Range answer is 206 Partial Content")
    tap.eq(shas, {sha}, "each carries the whole bundle's SHA-256")
    tap.ok(len(parts) == (total + chunk - 1) // chunk, "in %d chunks of %d bytes"
           % (len(parts), chunk))
    tap.eq(hashlib.sha256(joined).hexdigest(), sha,
           "the chunks put together have the SHA-256 of the header")
    p = fetch(env, eid, "-H", "Range: bytes=-100")
    tap.eq((p.status, p.body), (206, whole[-100:]), "a suffix range: the last 100 bytes")
    tap.eq(p.headers.get("content-range"), "bytes %d-%d/%d" % (total - 100, total - 1, total),
           "with its Content-Range")
    p = fetch(env, eid, "-r", "%d-" % (total + 10))
    tap.eq(p.status, 416, "a range past the end: 416", p)
    tap.eq(p.headers.get("content-range"), "bytes */%d" % total, "Content-Range: bytes */total")
    again = env.post_new(csr)
    tap.eq((again.status, again.json().get("EnrollmentId")), (200, eid),
           "the same CSR again: 200, the same enrollment")
    tap.eq(fetch(env, "enr-" + "0" * 32).status, 404, "an unknown enrollment id: 404")
    tap.eq(fetch(env, "enr-bad!id").status, 400, "a malformed enrollment id: 400")


LOCKER = r"""
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()
db.execute("ROLLBACK")
"""


def test_orphan(env, dev):
    """The registry locked past its busy timeout (10 s): issued, not recorded."""
    csr = env.new_csr_file(dev, "orphan")
    locker = subprocess.Popen([sys.executable, "-c", LOCKER, env.st.authz.registry],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    tap.eq(locker.stdout.readline().strip(), "locked", "another process holds the registry")
    try:
        r = env.post_new(csr)
        tap.eq(r.status, 202, "POST /new: 202 while the registry waits", r)
        eid = r.json().get("EnrollmentId", "")
        g = wait_for(lambda: (lambda x: x if x.status != 202 else None)(fetch(env, eid)),
                     timeout=30, step=0.5)
        tap.eq(g.status if g else None, 503, "then GET: 503, the certificate not recorded", g)
        tap.ok(g is not None and g.json().get("IdempotencyKey", "").startswith("http-"),
               "naming the idempotency key to retry with", g)
    finally:
        locker.stdin.close()
        locker.wait(timeout=30)
    r = env.post_new(csr)
    tap.eq((r.status, r.json().get("EnrollmentId")), (200, eid),
           "the same CSR again: 200 under the same enrollment id")
    serials = [c.serial for c in certs_list(env.st, dev.id)]
    tap.eq(serials, [r.json().get("SerialNumber")],
           "the signer's one certificate, not a second one")


def test_grpc_then_rest(env, dev):
    e = env.st.enroll(dev)
    g = fetch(env, e.enrollment_id)
    tap.eq(g.status, 200, "an enrollment made over gRPC: GET /enrollments/{id} 200", g)
    tap.eq(g.body.decode(), e.certificate_pem + e.chain_pem,
           "the same certificate and chain as the gRPC reply")
    tap.eq(g.headers.get("x-bundle-sha256"), e.bundle_sha256.hex(),
           "and the SHA-256 FetchCertificate gives")


# ---- EST ----

def test_est_cacerts(env):
    for path in ("/.well-known/est/cacerts", "/.well-known/est/us-east-1.widgiot/cacerts"):
        r = env.curl(path)
        tap.eq(r.status, 200, "GET %s: 200" % path, r)
        tap.eq(r.headers.get("content-type"), "application/pkcs7-mime",
               "application/pkcs7-mime")
        tap.eq(r.headers.get("content-transfer-encoding"), "base64",
               "Content-Transfer-Encoding: base64")
        certs = [x509.load_pem_x509_certificate(c.encode()) for c in certs_of(env, r.body)]
        tap.eq(len(certs), 3, "openssl pkcs7 -print_certs: issuing CA, intermediate, root")
        root = x509.load_pem_x509_certificate(env.st.root_pem.encode())
        tap.ok("us-east-1" in certs[0].subject.rfc4514_string() and certs[-1] == root,
               "the issuing CA first, the root last",
               [c.subject.rfc4514_string() for c in certs])
        env.cachain = "".join(c.public_bytes(serialization.Encoding.PEM).decode()
                              for c in certs[:-1])
    r = env.curl("/.well-known/est/eu-west-9.widgiot/cacerts")
    tap.eq(r.status, 404, "a CA that does not exist: 404", r)
    r = env.curl("/.well-known/est/nolabel!/cacerts")
    tap.eq(r.status, 404, "a label that is no CA name: 404", r)


def test_est_csrattrs(env):
    r = env.curl("/.well-known/est/csrattrs")
    tap.eq(r.status, 200, "GET csrattrs: 200", r)
    tap.eq(r.headers.get("content-type"), "application/csrattrs", "application/csrattrs")
    der = write(os.path.join(env.tmp, "attrs.der"), base64.b64decode(r.body))
    out = run(["openssl", "asn1parse", "-inform", "DER", "-in", der]).stdout
    tap.ok("commonName" in out and "ecdsa-with-SHA256" in out,
           "openssl asn1parse: a SEQUENCE naming commonName and ecdsa-with-SHA256", out)


def est_post(env, op, csr_der, *args, ctype="application/pkcs10"):
    f = write(os.path.join(env.tmp, "est.b64"), base64.encodebytes(csr_der))
    return env.curl("/.well-known/est/" + op, "-X", "POST", "-H", "Content-Type: " + ctype,
                    "--data-binary", "@" + f, *args)


def test_est_enroll(env, dev, dev2):
    r = est_post(env, "simpleenroll", dev.csr(der=True))
    tap.eq(r.status, 200, "simpleenroll with a base64 DER CSR of the registered key: 200", r)
    tap.eq(r.headers.get("content-type"), "application/pkcs7-mime; smime-type=certs-only",
           "application/pkcs7-mime; smime-type=certs-only")
    certs = certs_of(env, r.body)
    tap.eq(len(certs), 1, "openssl pkcs7 -print_certs: the certificate issued")
    tap.eq(key_of(certs[0]), dev.spki_der(), "for the device's registered key")
    r2 = est_post(env, "us-east-1.widgiot/simpleenroll", dev2.csr(der=True))
    tap.eq(r2.status, 200, "simpleenroll with the CA label: 200", r2)
    impostor = Device(env.tmp, "impostor2")
    r = est_post(env, "simpleenroll", impostor.csr(cn=dev.id, der=True))
    tap.eq(r.status, 403, "simpleenroll with another key: 403", r)
    tap.ok(r.headers.get("content-type", "").startswith("text/plain"),
           "a text/plain explanation", r.headers)
    r = est_post(env, "simpleenroll", impostor.csr(der=True))
    tap.eq(r.status, 404, "simpleenroll of an unregistered device: 404", r)
    r = est_post(env, "simpleenroll", dev.csr(der=True), ctype="application/json")
    tap.eq(r.status, 400, "simpleenroll with another Content-Type: 400", r)
    r = env.curl("/.well-known/est/serverkeygen", "-X", "POST")
    tap.eq(r.status, 501, "serverkeygen: 501 (a device's key never leaves it)", r)
    r = env.curl("/.well-known/est/simpleenroll")
    tap.eq(r.status, 405, "GET simpleenroll: 405", r)
    return certs[0], (certs_of(env, r2.body)[0] if r2.status == 200 else "")


def sign(keyfile, data):
    with open(keyfile, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), None)
    return key.sign(data, ec.ECDSA(hashes.SHA256()))


def test_est_reenroll(env, dev, cert_pem, other, other_pem):
    # curl --cert: the certificate, then its chain (from cacerts).
    certf = write(os.path.join(env.tmp, dev.id + ".crt"), cert_pem + env.cachain)
    mtls = ("--cert", certf, "--key", dev.key)
    serial = "%032X" % x509.load_pem_x509_certificate(cert_pem.encode()).serial_number
    r = est_post(env, "simplereenroll", dev.csr(der=True))
    tap.eq(r.status, 403, "simplereenroll without a client certificate: 403", r)
    # other's certificate, with other's key, renewing dev's CSR.
    of = write(os.path.join(env.tmp, other.id + ".crt"), other_pem + env.cachain)
    r = est_post(env, "simplereenroll", dev.csr(der=True), "--cert", of, "--key", other.key)
    tap.eq(r.status, 403, "simplereenroll with another device's certificate: 403", r)
    tap.ok(b"names device" in r.body, "the CSR names another device", r.body)
    r = est_post(env, "simplereenroll", dev.csr(der=True), "--cert",
                 write(os.path.join(env.tmp, "leafonly.crt"), cert_pem), "--key", dev.key)
    tap.eq(r.status, 403, "a client certificate without its chain does not verify: 403", r)
    r = est_post(env, "simplereenroll", dev.csr(der=True), *mtls)
    tap.eq(r.status, 200, "simplereenroll over mutual TLS with the current certificate: 200", r)
    new = certs_of(env, r.body)[0]
    new_serial = "%032X" % x509.load_pem_x509_certificate(new.encode()).serial_number
    tap.ok(new_serial != serial, "a new certificate")
    st = {c.serial: c for c in certs_list(env.st, dev.id)}
    tap.eq(st[new_serial].status, C.CERTIFICATE_STATUS_PENDING_ACK,
           "the renewal is PENDING_ACK")
    tap.eq(st[new_serial].replaces_serial, serial, "replacing the current certificate")
    # First use over TLS acknowledges it.
    newf = write(os.path.join(env.tmp, dev.id + ".new.crt"), new + env.cachain)
    r = env.curl("/.well-known/est/cacerts", "--cert", newf, "--key", dev.key)
    tap.eq(r.status, 200, "a request with the new certificate", r)
    st = {c.serial: c for c in certs_list(env.st, dev.id)}
    tap.eq((st[new_serial].status, st[serial].status),
           (C.CERTIFICATE_STATUS_ACTIVE, C.CERTIFICATE_STATUS_SUPERSEDED),
           "acknowledges it by its first use: ACTIVE, the old one SUPERSEDED")
    # A new key: refused without the current key's signature, then with it.
    newkey = Device(env.tmp, dev.id + "-k2")
    csr2 = newkey.csr(cn=dev.id, der=True)
    mtls2 = ("--cert", newf, "--key", dev.key)
    r = est_post(env, "simplereenroll", csr2, *mtls2)
    tap.eq(r.status, 403, "simplereenroll with a new key and no current-key-signature: 403", r)
    tap.ok(b"current_key_signature" in r.body, "saying what is missing", r.body)
    sig = base64.b64encode(sign(dev.key, csr2)).decode()
    r = est_post(env, "simplereenroll", csr2, *mtls2, "-H", "current-key-signature: " + sig)
    tap.eq(r.status, 200, "with current-key-signature (the current key over the CSR): 200", r)
    k2 = certs_of(env, r.body)[0] if r.status == 200 else ""
    tap.eq(key_of(k2) if k2 else b"", newkey.spki_der(), "a certificate for the new key")


# ---- plain HTTP ----

def test_plain(env, dev):
    f = env.new_csr_file(dev, "plain")
    r = env.sh('curl -sS -D {hdr} -o {body} -X POST -H "device-csr: $(base64 -w0 %s)" '
               '%s/new' % (f, env.st.authz.http))
    tap.eq(r.status, 403, "the front doors on the plain listener: 403", r)
    tap.ok("TLS" in r.json().get("message", ""), "saying they need TLS", r.body)
    r = env.curl("/health", base=env.st.authz.http)
    tap.eq(r.status, 200, "the plain listener still serves /health")
    conf = os.path.join(env.tmp, "plain.conf")
    with open(env.st.authz.conf_path) as src:
        text = src.read()
    text = text.replace("listen = 127.0.0.1:%d" % env.st.authz.http_port,
                        "listen = 0.0.0.0:%d\nplain_front_doors = yes" % free_port())
    write(conf, text)
    p = subprocess.run([os.path.join(BUILD, "authz", "secretfree-authz"), "-c", conf, "--check"],
                       capture_output=True, text=True, timeout=30)
    tap.ok(p.returncode != 0 and "loopback" in p.stderr,
           "plain_front_doors on 0.0.0.0 is refused at start, naming loopback",
           p.stdout + p.stderr)


def test_plain_loopback(tmp):
    """plain_front_doors on a loopback listener serves the REST call."""
    st = Stack(tmp, regions=("us-east-1",), authz_kw={"http_extra": "plain_front_doors = yes\n"})
    try:
        dev = Device(tmp, "2001")
        st.register([dev])
        f = write(os.path.join(tmp, "2001.csr.pem"), dev.csr())
        p = subprocess.run(["bash", "-c", 'curl -sS -X POST -H "device-csr: $(base64 -w0 %s)" '
                            '-w "\\n%%{http_code}" %s/new' % (f, st.authz.http)],
                           capture_output=True, text=True)
        body, _, code = p.stdout.rpartition("\n")
        tap.eq(code, "200", "plain_front_doors on 127.0.0.1: POST /new over plain HTTP 200",
               p.stdout + p.stderr)
        tap.ok("Certificate" in body, "with the certificate")
    finally:
        st.stop()


# ---- slow clients ----

def test_slow(env, dev):
    socks = []
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", env.https_port))
        s.sendall(b"\x16\x03\x01")  # the start of a TLS record, then nothing
        socks.append(s)
    t0 = time.time()
    r = env.post_new(env.new_csr_file(dev))
    tap.eq(r.status, 200, "20 idle connections open: an enrollment still gets 200", r)
    tap.ok(time.time() - t0 < 10, "promptly")
    closed = 0
    deadline = time.time() + 15
    for s in socks:
        s.settimeout(max(0.1, deadline - time.time()))
        try:
            # A TLS alert (close_notify), then the end of the stream.
            while s.recv(100) != b"":
                pass
            closed += 1
        except ConnectionResetError:
            closed += 1
        except socket.timeout:
            pass
        s.close()
    tap.eq(closed, 20, "each idle connection is closed by connection_timeout_seconds")
    took = time.time() - t0
    tap.ok(took < 15, "within seconds (%.1f s)" % took)
    # A trickled body on the plain listener (no TLS to drive by hand).
    s = socket.create_connection(("127.0.0.1", env.st.authz.http_port))
    s.sendall(b"POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Type: application/ocsp-request\r\n"
              b"Content-Length: 1000\r\n\r\n")
    t0 = time.time()
    cut = False
    try:
        for _ in range(30):
            s.sendall(b"A")
            time.sleep(0.5)
    except (BrokenPipeError, ConnectionResetError):
        cut = True
    took = time.time() - t0
    s.close()
    tap.ok(cut and took < 12, "a body trickled a byte at a time is cut off (%.1f s)" % took)
    big = "X" * 70000
    r = env.curl("/health", "-H", "X-Big: " + big)
    tap.eq(r.status, 431, "headers over the connection's memory: 431", r)


def main():
    t = TempDir("sf-http-")
    env = None
    try:
        env = Env(t.path)
        devs = [Device(t.path, "11%02d" % i) for i in range(1, 10)]
        env.st.register(devs)
        test_rest_ok(env, devs[0])
        test_rest_bodies(env, devs[0], devs[1])
        test_rest_400(env, devs[1])
        test_rest_403_404(env, devs[1], devs[2])
        test_rest_413(env, devs[1])
        test_rest_409_429(env, devs[0])
        test_rest_503(env, devs[3])
        test_latent(env, devs[4])
        test_orphan(env, devs[5])
        test_grpc_then_rest(env, devs[6])
        test_est_cacerts(env)
        test_est_csrattrs(env)
        cert, other = test_est_enroll(env, devs[7], devs[8])
        test_est_reenroll(env, devs[7], cert, devs[8], other)
        test_plain(env, devs[2])
        test_slow(env, devs[2])
    except Exception as e:  # noqa: BLE001
        import traceback
        tap.ok(False, "test raised", traceback.format_exc())
        if env:
            tap.diag(env.st.authz.log_text()[-3000:])
        del e
    finally:
        if env:
            env.st.stop()
        t.cleanup()
    t2 = TempDir("sf-http-plain-")
    try:
        test_plain_loopback(t2.path)
    finally:
        t2.cleanup()
    return tap.done()


if __name__ == "__main__":
    sys.exit(main())
