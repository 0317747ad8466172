#!/usr/bin/python3
"""OCSP end to end: the real signer (pre-signed responses in its journal,
signed in a SoftHSM2 token) behind the real authz ([http] listener), asked
with the stock tools: `openssl ocsp` (POST) at the path the certificate's
AIA names, curl (GET, RFC 6960 A.1). good, then revoked after `secretfree
cert revoke` (the background refresh, seen in the journal before anyone
asks) with its reason and time, unknown for a serial never issued; the
responses verify with the CA; the same request gets the same bytes
(ECDSA would differ if signed twice); with the signer stopped authz serves
what it cached and says tryLater for the rest; garbage is
malformedRequest; a delegated responder (after a SIGHUP) signs with its
own certificate, which verifies up to the root."""
import base64
import calendar
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import traceback
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import tap  # noqa: E402
from sfharness import Device, Stack, TempDir, protos, run, show, split_pem  # noqa: E402

pb = protos()
C, A = pb.common, pb.ca_admin
OCSP_EXTRA = "\n[ocsp]\ninterval_seconds = 1\n"


def write(path, text):
    with open(path, "w" if isinstance(text, str) else "wb") as f:
        f.write(text)
    return path


def ocsp(args, check=False):
    return subprocess.run(["openssl", "ocsp"] + args, capture_output=True, text=True,
                          check=check)


def openssl_time(s):
    """'Dec  4 18:20:00 2026 GMT' as a Unix time."""
    return calendar.timegm(time.strptime(" ".join(s.split()), "%b %d %H:%M:%S %Y GMT"))


def field(out, name):
    m = re.search(r"^\s*%s: (.*)$" % re.escape(name), out, re.M)
    return m.group(1).strip() if m else None


def journal_status(st, serial):
    """The stored SHA-1 response's status for serial in the signer's journal
    (0 good, 1 revoked), read from the side as an auditor would."""
    db = sqlite3.connect("file:%s?mode=ro" % st.signer.journal, uri=True)
    try:
        row = db.execute("SELECT status FROM ocsp WHERE serial = ? AND"
                         " cert_id_hash = 'sha1'", (serial,)).fetchone()
    finally:
        db.close()
    return row[0] if row else None


def wait_for(fn, want, timeout=20):
    deadline = time.time() + timeout
    got = fn()
    while got != want and time.time() < deadline:
        time.sleep(0.2)
        got = fn()
    return got


class Env:
    """The stack, its files (issuer, root, chain, leaves) and the URL."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.st = Stack(tmp, regions=("us-east-1",), signer_extra=OCSP_EXTRA)
        self.devices = [Device(tmp, i) for i in ("2001", "2002", "2003")]
        self.st.register(self.devices)
        self.e1, self.e2 = (self.st.enroll(d) for d in self.devices[:2])
        chain = split_pem(self.e1.chain_pem)
        self.issuer = self.file("issuer.pem", chain[0])
        self.root = self.file("root.pem", chain[-1])
        self.others = self.file("chain.pem", "".join(chain[:-1]))
        self.leaf1 = self.file("leaf1.pem", self.e1.certificate_pem)
        self.leaf2 = self.file("leaf2.pem", self.e2.certificate_pem)
        aia = run(["openssl", "x509", "-in", self.leaf1, "-noout",
                   "-ocsp_uri"]).stdout.strip()
        self.path = urllib.parse.urlparse(aia).path
        self.url = self.st.authz.http + self.path

    def file(self, name, text):
        return write(os.path.join(self.tmp, name), text)

    def ask(self, *args):
        """openssl ocsp at the AIA's URL, trusting the root."""
        return ocsp(["-issuer", self.issuer, "-url", self.url, "-CAfile", self.root]
                    + list(args))

    def request(self, name, leaf):
        """The DER request openssl makes for leaf, without a nonce."""
        out = os.path.join(self.tmp, name)
        ocsp(["-issuer", self.issuer, "-cert", leaf, "-no_nonce", "-reqout", out], check=True)
        with open(out, "rb") as f:
            return f.read()

    def post(self, der):
        return self.st.authz.http_post(self.path, der, "application/ocsp-request")


def check_good(env):
    st = env.st
    tap.eq(env.path, "/us-east-1.widgiot", "the AIA names the issuing CA's path")
    tap.eq(wait_for(lambda: journal_status(st, env.e1.serial), 0), 0,
           "the background task pre-signs a response for a new certificate")
    p = env.ask("-cert", env.leaf1)
    tap.ok(p.returncode == 0 and "%s: good" % env.leaf1 in p.stdout,
           "openssl ocsp at the AIA's path: good", show(p))
    tap.ok("Response verify OK" in p.stderr, "the response verifies with the CA", show(p))
    tu, nu = field(p.stdout, "This Update"), field(p.stdout, "Next Update")
    tap.ok(tu and nu and openssl_time(nu) - openssl_time(tu) == 4 * 86400,
           "thisUpdate to nextUpdate: the default 4 days", show(p))

    # Same request, same bytes; the headers.
    req1 = env.request("req1.der", env.leaf1)
    s1, h1, b1 = env.post(req1)
    s2, _, b2 = env.post(req1)
    tap.eq((s1, s2), (200, 200), "POST twice: 200 both times")
    tap.ok(b1 and b1 == b2, "the same bytes both times (pre-signed, not signed per request)")
    tap.eq(h1.get("Content-Type"), "application/ocsp-response", "Content-Type")
    m = re.match(r"max-age=(\d+)$", h1.get("Cache-Control", ""))
    left = openssl_time(nu) - time.time() if nu else 0
    tap.ok(m and abs(int(m.group(1)) - left) < 30,
           "Cache-Control max-age until nextUpdate (%s, %d s left)"
           % (h1.get("Cache-Control"), left))
    return req1, b1


def check_get(env, req1, b1):
    """GET, RFC 6960 A.1: base64, URL-encoded, after the AIA path or at the root."""
    enc = urllib.parse.quote(base64.b64encode(req1).decode(), safe="")
    out = os.path.join(env.tmp, "get.der")
    for where in (env.path + "/", "/"):
        p = subprocess.run(["curl", "-s", "-o", out, "-w", "%{http_code} %{content_type}",
                            env.st.authz.http + where + enc], capture_output=True, text=True)
        with open(out, "rb") as f:
            got = f.read()
        tap.ok(p.stdout == "200 application/ocsp-response" and got == b1,
               "curl GET %s<base64>: the same response" % where, p.stdout)
    p = ocsp(["-respin", out, "-issuer", env.issuer, "-cert", env.leaf1, "-CAfile", env.root])
    tap.ok("%s: good" % env.leaf1 in p.stdout and "Response verify OK" in p.stderr,
           "the GET response read by openssl ocsp -respin: good, verified", show(p))
    p = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                        env.st.authz.http + "/no/such/thing"], capture_output=True, text=True)
    tap.eq(p.stdout, "404", "GET of a path that holds no request: 404")


def check_kinds(env):
    """SHA-256 CertIDs, two certificates in one request, an unknown serial."""
    p = env.ask("-sha256", "-cert", env.leaf2)
    tap.ok("%s: good" % env.leaf2 in p.stdout and "Response verify OK" in p.stderr,
           "a SHA-256 CertID: good, verified", show(p))
    p = env.ask("-cert", env.leaf1, "-cert", env.leaf2)
    tap.ok("%s: good" % env.leaf1 in p.stdout and "%s: good" % env.leaf2 in p.stdout,
           "two certificates of one CA in one request", show(p))
    p = env.ask("-serial", "0x5EC2E7F2EE00000000000000000000AB")
    tap.ok(": unknown" in p.stdout and "Response verify OK" in p.stderr,
           "a serial never issued: unknown, verified", show(p))
    s, h, body = env.post(b"\x01garbage")
    tap.ok(s == 200 and h.get("Content-Type") == "application/ocsp-response"
           and body == bytes([0x30, 0x03, 0x0a, 0x01, 0x01]),
           "garbage body: malformedRequest (%r)" % body)
    tap.ok("no-store" in h.get("Cache-Control", ""), "an error is not to be cached")


def check_revoke(env):
    """The refresh re-signs the revoked certificate's response; openssl says so."""
    st = env.st
    p = st.cli("cert", "revoke", env.e1.serial, "--reason", "key-compromise")
    tap.eq(p.returncode, 0, "secretfree cert revoke", show(p))
    tap.eq(wait_for(lambda: journal_status(st, env.e1.serial), 1), 1,
           "the background refresh re-signs the stored response as revoked")
    p = env.ask("-cert", env.leaf1)
    tap.ok("%s: revoked" % env.leaf1 in p.stdout and "Response verify OK" in p.stderr,
           "openssl ocsp: revoked, verified", show(p))
    tap.eq(field(p.stdout, "Reason"), "keyCompromise", "with the reason")
    sc = st.sadmin.call("CaAdmin", "GetCertificate",
                        A.GetCertificateRequest(serial=env.e1.serial), C.CertificateInfo)
    rt = field(p.stdout, "Revocation Time")
    tap.ok(rt and openssl_time(rt) == sc.revoked_at,
           "and the revocation time the journal has (%s)" % rt)
    tap.ok("%s: good" % env.leaf2 in env.ask("-cert", env.leaf2).stdout,
           "another certificate stays good")


def check_signer_away(env):
    """What authz cached is served byte for byte; the rest is tryLater."""
    req2 = env.request("req2.der", env.leaf2)
    _, _, before = env.post(req2)
    env.st.signer.stop()
    s, _, during = env.post(req2)
    tap.ok(s == 200 and during == before,
           "signer stopped: authz serves the response it cached, byte for byte")
    p = env.ask("-cert", env.leaf2)
    tap.ok("%s: good" % env.leaf2 in p.stdout, "and openssl ocsp says good", show(p))
    p = env.ask("-serial", "0x7000000000000000000000000000000F")
    tap.ok("trylater" in (p.stdout + p.stderr).lower(),
           "something never cached, signer stopped: tryLater", show(p))


def check_delegated(env):
    """responder = delegated after a SIGHUP: a responder certificate signs."""
    st = env.st
    st.signer.write_conf(extra=OCSP_EXTRA + "responder = delegated\n")
    st.signer.signal(signal.SIGHUP)
    tap.ok(wait_for(lambda: "reloaded" in st.signer.log_text(), True),
           "the signer reloads with responder = delegated")
    leaf3 = env.file("leaf3.pem", st.enroll(env.devices[2]).certificate_pem)
    p = env.ask("-cert", leaf3, "-verify_other", env.others, "-resp_text")
    tap.ok("%s: good" % leaf3 in p.stdout and "Response verify OK" in p.stderr,
           "delegated: good, verified up to the root", show(p))
    tap.ok("OCSP Signing" in p.stdout and "OCSP No Check" in p.stdout,
           "the responder's certificate is included, id-kp-OCSPSigning and"
           " id-pkix-ocsp-nocheck", show(p))
    rid = re.search(r"Responder Id: (.*)", p.stdout)
    tap.ok(rid and "us-east-1.widgiot OCSP Responder" in rid.group(1),
           "the responder id names the delegated responder", show(p))
    certs = st.sadmin.call("CaAdmin", "ListCertificates",
                           A.ListCertificatesRequest(ca_name="us-east-1.widgiot"),
                           A.ListCertificatesResponse)
    tap.ok(any(c.profile == "ocsp-responder" for c in certs.certificates),
           "its certificate is in the signer's journal")


def main():
    td = TempDir("sf-ocsp-")
    env = None
    try:
        env = Env(td.path)
        req1, b1 = check_good(env)
        check_get(env, req1, b1)
        check_kinds(env)
        check_revoke(env)
        check_delegated(env)
        check_signer_away(env)
    except Exception as e:  # noqa: BLE001
        tap.ok(False, "test raised %r" % e, traceback.format_exc())
    if env is not None:
        env.st.stop()
    td.cleanup()
    return tap.done()


if __name__ == "__main__":
    sys.exit(main())
