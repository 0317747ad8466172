#!/usr/bin/python3
"""CRLs end to end on the real signer (SoftHSM2) and authz, checked with
stock tools: a revocation reaches the CRL that authz serves over HTTP and
writes into crl_dir; `openssl crl -verify` accepts both; `openssl verify
-crl_check` refuses the revoked certificate and accepts another; the CRL
number grows, the reason shows in `openssl crl -text`, the IDP is the
certificates' CRL DP; a burst of revocations gives far fewer new CRL
numbers; a CRL is renewed before nextUpdate without any revocation;
mosquitto with crlfile = crl_dir/crls.pem refuses the revoked device and
admits another; `secretfree ca crl`; a CA partitioned in 16 shards with
10,000 revoked certificates, every serial in exactly its shard, a sample
refused by OpenSSL against its shard's CRL; two CAs at one URL; with the
signer stopped, authz serves what it had, and after a restart what
crl_dir holds."""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import tap  # noqa: E402
from sfharness import (SCALE, Device, Stack, TempDir, free_port, protos, run,  # noqa: E402
                       run_bytes, server_cert, show)

from cryptography import x509  # noqa: E402

pb = protos()
C, A = pb.common, pb.ca_admin

VALIDITY, REFRESH = 120, 100          # [crl]: a new CRL every ~20 s anyway
SIGNER_EXTRA = ("[crl]\nvalidity_seconds = %d\nrefresh_before_seconds = %d\n"
                "check_seconds = 2\n" % (VALIDITY, REFRESH))
BURST = 40
BIG, SHARDS = max(1000, int(10000 * SCALE)), 16
BIG_CA = "ap-south-1.widgiot"


def wait_for(fn, timeout=15, step=0.2):
    """fn() until it is true (returned) or timeout (its last value)."""
    end = time.time() + timeout
    v = fn()
    while not v and time.time() < end:
        time.sleep(step)
        v = fn()
    return v


def write(path, data):
    with open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    return path


def crl_of(der):
    return x509.load_der_x509_crl(der)


def number(crl):
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def serials(crl):
    """The serials a CRL lists, as numbers (text serials: int(s, 16))."""
    return {r.serial_number for r in crl}


def ints(hex_serials):
    return {int(s, 16) for s in hex_serials}


def idp_uri(crl):
    try:
        v = crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint).value
    except x509.ExtensionNotFound:
        return None
    return v.full_name[0].value


def cdp_uri(cert_pem):
    c = x509.load_pem_x509_certificate(cert_pem.encode())
    v = c.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    return v[0].full_name[0].value


def http_crl(st, name):
    """(status, headers, CRL object or None, body) of GET /crl/name."""
    status, headers, body = st.authz.http_get("/crl/" + name)
    crl = None
    if status == 200 and not name.endswith(".pem"):
        try:
            crl = crl_of(body)
        except ValueError:
            pass
    return status, headers, crl, body


def served_number(st, name):
    s, _, crl, _ = http_crl(st, name)
    return number(crl) if crl is not None else 0


def chain_of(st, ca):
    r = st.sadmin.call("CaAdmin", "GetCaChain", A.GetCaRequest(name=ca), A.GetChainResponse)
    return r.chain_pem


def ossl_verify(tmp, chain_pem, leaf_pem, crl_path):
    """openssl verify -crl_check of leaf under the chain's root with one CRL file."""
    certs = chain_pem.split("-----END CERTIFICATE-----\n")
    certs = [c + "-----END CERTIFICATE-----\n" for c in certs if c.strip()]
    root = write(os.path.join(tmp, "root.pem"), certs[-1])
    untrusted = write(os.path.join(tmp, "untrusted.pem"), "".join(certs[:-1]))
    leaf = write(os.path.join(tmp, "leaf.pem"), leaf_pem)
    p = run(["openssl", "verify", "-crl_check", "-CAfile", root, "-untrusted", untrusted,
             "-CRLfile", crl_path, leaf], check=False)
    return p.returncode == 0, p.stdout + p.stderr


def basics(st, tmp, crl_dir, e1, e2):
    """One revocation, seen over HTTP and in crl_dir, checked with openssl."""
    name = "us-east-1.widgiot.crl"
    n0 = wait_for(lambda: served_number(st, name))
    tap.ok(n0 >= 1, "authz serves the issuing CA's CRL before any revocation (number %d)" % n0)
    p = st.cli("cert", "revoke", e1.serial, "--reason", "key-compromise")
    tap.ok(p.returncode == 0, "cert revoke --reason key-compromise", show(p))
    got = wait_for(lambda: int(e1.serial, 16) in serials(http_crl(st, name)[2] or []),
                   timeout=15)
    tap.ok(got, "the revoked serial is in the CRL authz serves within seconds")
    status, headers, crl, der = http_crl(st, name)
    tap.eq(status, 200, "GET /crl/%s: 200" % name)
    tap.eq(headers.get("Content-Type"), "application/pkix-crl", "Content-Type application/pkix-crl")
    cc = headers.get("Cache-Control", "")
    age = int(cc.split("=")[1]) if cc.startswith("max-age=") else -1
    tap.ok(0 < age <= VALIDITY, "Cache-Control max-age until nextUpdate (%s)" % cc)
    tap.ok(number(crl) > n0, "the CRL number grew (%d -> %d)" % (n0, number(crl)))
    tap.eq(int((crl.next_update - crl.last_update).total_seconds()), VALIDITY,
           "nextUpdate - thisUpdate = [crl] validity_seconds")

    chain = chain_of(st, "us-east-1.widgiot")
    cafile = write(os.path.join(tmp, "chain.pem"), chain)
    http_der = write(os.path.join(tmp, "http.crl"), der)
    p = run(["openssl", "crl", "-inform", "DER", "-in", http_der, "-noout", "-verify",
             "-CAfile", cafile], check=False)
    tap.ok(p.returncode == 0 and "verify OK" in p.stderr + p.stdout,
           "openssl crl -verify -CAfile: the CRL fetched over HTTP", p.stdout + p.stderr)
    pem_file = os.path.join(crl_dir, name + ".pem")
    def pem_lists_e1():
        try:
            with open(pem_file, "rb") as f:
                return int(e1.serial, 16) in serials(x509.load_pem_x509_crl(f.read()))
        except (OSError, ValueError):
            return False
    ok = wait_for(pem_lists_e1)
    tap.ok(ok, "crl_dir has the PEM with the revocation")
    p = run(["openssl", "crl", "-in", pem_file, "-noout", "-verify", "-CAfile", cafile], check=False)
    tap.ok(p.returncode == 0 and "verify OK" in p.stderr + p.stdout,
           "openssl crl -verify -CAfile: the CRL from crl_dir", p.stdout + p.stderr)
    with open(os.path.join(crl_dir, name), "rb") as f:
        tap.ok(int(e1.serial, 16) in serials(crl_of(f.read())), "crl_dir has the DER too")
    text = run(["openssl", "crl", "-inform", "DER", "-in", http_der, "-noout", "-text"]).stdout
    tap.ok("Key Compromise" in text, "openssl crl -text shows the reason (Key Compromise)")
    tap.ok("X509v3 CRL Number" in text and "Issuing Distribution Point: critical" in text,
           "openssl crl -text: CRL number and a critical IDP")
    tap.eq(idp_uri(crl), cdp_uri(e1.certificate_pem), "the IDP is the certificates' CRL DP")

    ok1, out1 = ossl_verify(tmp, chain, e1.certificate_pem, pem_file)
    tap.ok(not ok1 and "certificate revoked" in out1,
           "openssl verify -crl_check refuses the revoked certificate", out1)
    ok2, out2 = ossl_verify(tmp, chain, e2.certificate_pem, pem_file)
    tap.ok(ok2, "openssl verify -crl_check accepts another device's certificate", out2)
    return chain


def coalescing(st, tmp):
    """A burst of revocations gives far fewer than one CRL each."""
    name = "us-east-1.widgiot.crl"
    key = os.path.join(tmp, "burst.key")
    run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-out", key])
    csr = run_bytes(["openssl", "req", "-new", "-key", key, "-subj", "/CN=burst"])
    req = A.IssueServerCertificateRequest(csr=csr, ca_name="us-east-1.widgiot",
                                          dns_names=["burst.example.net"], validity_days=30)
    issued = [st.sadmin.call("CaAdmin", "IssueServerCertificate", req,
                             A.IssueServerCertificateResponse).serial for _ in range(BURST)]
    before = served_number(st, name)
    # Every number made since: the signer's log names each one.
    t0 = time.time()
    for s in issued:
        st.sadmin.call("CaAdmin", "RevokeCertificate",
                       A.RevokeCertificateRequest(serial=s, reason=C.REVOCATION_REASON_SUPERSEDED),
                       C.CertificateInfo)
    took = time.time() - t0
    got = wait_for(lambda: ints(issued) <= serials(http_crl(st, name)[2] or []), timeout=15)
    tap.ok(got, "all %d revocations of the burst are in the served CRL" % BURST)
    after = served_number(st, name)
    tap.diag("burst of %d revocations in %.2f s: CRL %d -> %d" % (BURST, took, before, after))
    tap.ok(0 < after - before <= 4,
           "%d revocations gave %d new CRL numbers (coalesced)" % (BURST, after - before))


class Broker:
    """mosquitto on a free port requiring client certificates from cafile,
    with crlfile if given."""

    def __init__(self, tmp, name, cafile, cert, key, crlfile=None):
        self.port = free_port()
        lines = ["per_listener_settings true",
                 "listener %d 127.0.0.1" % self.port,
                 "cafile " + cafile, "certfile " + cert, "keyfile " + key,
                 "require_certificate true", "use_identity_as_username true",
                 "allow_anonymous false", "persistence false",
                 "user " + run(["id", "-un"]).stdout.strip()]
        if crlfile:
            lines.append("crlfile " + crlfile)
        conf = write(os.path.join(tmp, name + ".conf"), "\n".join(lines) + "\n")
        self.log_path = os.path.join(tmp, name + ".log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(["mosquitto", "-c", conf], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        wait_for(lambda: "running" in self.log_text() or self.proc.poll() is not None,
                 timeout=10)

    def log_text(self):
        with open(self.log_path) as f:
            return f.read()

    def pub(self, tmp, root, dev, enr):
        crt = write(os.path.join(tmp, dev.id + ".crt"), enr.certificate_pem)
        return subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.port),
                               "--cafile", root, "--cert", crt, "--key", dev.key,
                               "-t", "telemetry/" + dev.id, "-m", "x"],
                              capture_output=True, text=True, timeout=30)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.log.close()


def mosquitto(st, tmp, crl_dir, chain, devices):
    """A broker with crlfile = crl_dir/crls.pem: the revoked device is
    refused, the other admitted; without crlfile both are admitted."""
    (d1, e1), (d2, e2) = devices
    bundle = os.path.join(crl_dir, "crls.pem")
    blocks = [b + "-----END X509 CRL-----\n" for b in
              open(bundle).read().split("-----END X509 CRL-----\n") if b.strip()]
    issuers = sorted(x509.load_pem_x509_crl(b.encode()).issuer.rfc4514_string()
                     for b in blocks)
    want = sorted(x509.load_pem_x509_certificate(ca.certificate_pem.encode())
                  .subject.rfc4514_string() for ca in st.cas.values())
    tap.eq(issuers, want, "crls.pem holds one complete CRL per CA")
    bkey, bcrt, root = server_cert(st.sadmin, tmp, "broker")
    cafile = write(os.path.join(tmp, "mqtt-ca.pem"), chain)
    rootf = write(os.path.join(tmp, "broker-root.pem"), root)
    plain = Broker(tmp, "mqtt-plain", cafile, bcrt, bkey)
    try:
        p = plain.pub(tmp, rootf, d1, e1)
        tap.eq(p.returncode, 0, "mosquitto without crlfile admits 1111 (the CRL makes"
               " the difference)", p.stderr + plain.log_text())
    finally:
        plain.stop()
    mq = Broker(tmp, "mqtt-crl", cafile, bcrt, bkey, crlfile=bundle)
    try:
        good = mq.pub(tmp, rootf, d2, e2)
        tap.eq(good.returncode, 0, "mosquitto with crlfile admits device 1112",
               good.stdout + good.stderr + mq.log_text())
        bad = mq.pub(tmp, rootf, d1, e1)
        # mosquitto may log the refusal a moment after the client saw it.
        wait_for(lambda: "certificate verify failed" in mq.log_text(), timeout=5)
        tap.ok(bad.returncode != 0 and "certificate verify failed" in mq.log_text(),
               "mosquitto with crlfile refuses the revoked device 1111",
               bad.stdout + bad.stderr + mq.log_text())
    finally:
        mq.stop()


def cli_crl(st, tmp):
    """secretfree ca crl."""
    cli = st.cli
    out = os.path.join(tmp, "cli.pem")
    p = cli("ca", "crl", "us-east-1.widgiot", "--out", out)
    tap.ok(p.returncode == 0 and "revoked" in p.stdout and "published at" in p.stdout,
           "ca crl NAME --out FILE: a summary", show(p))
    p2 = run(["openssl", "crl", "-in", out, "-noout", "-issuer"], check=False)
    tap.ok("us-east-1.widgiot" in p2.stdout, "the file is the CA's CRL in PEM", p2.stdout)
    p = cli("ca", "crl", "us-east-1.widgiot", "--der", "--out", out + ".der")
    p2 = run(["openssl", "crl", "-inform", "DER", "-in", out + ".der", "-noout"], check=False)
    tap.ok(p.returncode == 0 and p2.returncode == 0, "ca crl --der --out: DER", show(p))
    p = cli("ca", "crl", "root")
    tap.ok(p.returncode == 0 and p.stdout.startswith("-----BEGIN X509 CRL-----"),
           "ca crl root: PEM on standard output", show(p))
    p = cli("--json", "ca", "crl", BIG_CA, "--shard", "3")
    try:
        j = json.loads(p.stdout)
    except ValueError:
        j = {}
    tap.ok(p.returncode == 0 and j.get("shard") == 3 and j.get("shards") == SHARDS
           and j.get("distribution_point", "").endswith("-3.crl") and "crl_pem" in j,
           "--json ca crl --shard 3: shard, shards, its URL, the PEM", show(p))
    p = cli("ca", "crl", "us-east-1.widgiot", "--shard", "2")
    tap.ok(p.returncode == 5 and "shard" in p.stderr, "a shard the CA does not have: exit 5",
           show(p))
    p = cli("ca", "crl", "no-such-ca")
    tap.ok(p.returncode == 3, "an unknown CA: exit 3", show(p))
    p = cli("ca", "crl", "--help")
    tap.ok(p.returncode == 0 and "Usage: secretfree ca crl" in p.stdout and "Example" in p.stdout,
           "ca crl --help", show(p))


def partitions(st, tmp, crl_dir):
    """10,000 revoked certificates of a CA with 16 shards."""
    r = st.sadmin.call("CaAdmin", "CreateCa", A.CreateCaRequest(
        role=C.CA_ROLE_ISSUING, product_line="widgiot", region="ap-south-1",
        crl_shards=SHARDS), A.CreateCaResponse)
    tap.eq(r.ca.crl_shards, SHARDS, "CreateCa with crl_shards = %d" % SHARDS)
    key = os.path.join(tmp, "big.key")
    run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-out", key])
    csr = run_bytes(["openssl", "req", "-new", "-key", key, "-subj", "/CN=big"])
    ch = st.sadmin.channel
    issue = ch.unary_unary("/secretfree.v1.CaAdmin/IssueServerCertificate",
                           request_serializer=lambda m: m.SerializeToString(),
                           response_deserializer=A.IssueServerCertificateResponse.FromString)
    revoke = ch.unary_unary("/secretfree.v1.CaAdmin/RevokeCertificate",
                            request_serializer=lambda m: m.SerializeToString(),
                            response_deserializer=C.CertificateInfo.FromString)
    req = A.IssueServerCertificateRequest(csr=csr, ca_name=BIG_CA,
                                          dns_names=["big.example.net"], validity_days=30)

    def pipelined(calls, window=64):
        out, pending = [], []
        for c in calls:
            pending.append(c())
            if len(pending) >= window:
                out += [f.result() for f in pending]
                pending = []
        return out + [f.result() for f in pending]

    t0 = time.time()
    certs = pipelined(lambda: issue.future(req, timeout=60) for _ in range(BIG))
    t1 = time.time()
    pipelined(lambda s=c.serial: revoke.future(A.RevokeCertificateRequest(
        serial=s, ca_name=BIG_CA, reason=C.REVOCATION_REASON_CESSATION_OF_OPERATION),
        timeout=60) for c in certs)
    t2 = time.time()
    tap.diag("%d certificates issued in %.1f s, revoked in %.1f s" % (BIG, t1 - t0, t2 - t1))
    good = st.sadmin.call("CaAdmin", "IssueServerCertificate", req,
                          A.IssueServerCertificateResponse)
    want = ints(c.serial for c in certs)
    tap.eq(len(want), BIG, "%d distinct serials" % BIG)

    base = BIG_CA + ".crl"
    got = wait_for(lambda: len(serials(http_crl(st, base)[2] or [])) == BIG, timeout=30)
    tap.ok(got, "the complete CRL authz serves lists all %d" % BIG)
    status, _, complete, der = http_crl(st, base)
    tap.eq(idp_uri(complete) if complete else "", None, "the complete CRL has no IDP")
    made = [l for l in st.signer.log_text().splitlines()
            if "CA %s " % BIG_CA in l and "listing %d revoked" % BIG in l]
    tap.diag("complete CRL of %d entries: %d bytes; signer: %s" % (
        BIG, len(der), made[-1].split(": ", 1)[-1] if made else "?"))
    num = number(complete)

    in_own, elsewhere, union, idp_ok, same_num = 0, 0, set(), 0, 0
    shard_crl = {}
    for k in range(1, SHARDS + 1):
        name = "%s-%d.crl" % (BIG_CA, k)
        s, _, crl, body = http_crl(st, name)
        if crl is None:
            continue
        shard_crl[k] = body
        listed = serials(crl)
        union |= listed
        for sn in listed:
            if sn % SHARDS + 1 == k:
                in_own += 1
            else:
                elsewhere += 1
        idp_ok += idp_uri(crl) == "http://crl.automatra.net/%s-%d.crl" % (BIG_CA, k)
        same_num += number(crl) == num
    tap.eq(len(shard_crl), SHARDS, "authz serves all %d shard CRLs" % SHARDS)
    tap.eq(union, want, "the shards together list every revoked serial")
    tap.eq(in_own, BIG, "every serial is in its own shard (serial mod %d + 1)" % SHARDS)
    tap.eq(elsewhere, 0, "and in no other")
    tap.eq(idp_ok, SHARDS, "each shard's IDP is its own URL")
    tap.eq(same_num, SHARDS, "every shard has the complete CRL's number (%d)" % num)

    chain = chain_of(st, BIG_CA)
    sample = [certs[i] for i in (0, BIG // 8, BIG // 2, 7 * BIG // 9, BIG - 1)]
    refused, idp_cdp = 0, 0
    for c in sample:
        k = int(c.serial, 16) % SHARDS + 1
        crl_path = write(os.path.join(tmp, "shard.crl"), shard_crl.get(k, b""))
        pem = run(["openssl", "crl", "-inform", "DER", "-in", crl_path], check=False).stdout
        pem_path = write(os.path.join(tmp, "shard.pem"), pem)
        ok, out = ossl_verify(tmp, chain, c.certificate_pem, pem_path)
        refused += (not ok) and "certificate revoked" in out
        idp_cdp += cdp_uri(c.certificate_pem) == "http://crl.automatra.net/%s-%d.crl" % (BIG_CA, k)
    tap.eq(refused, len(sample),
           "openssl verify -crl_check refuses a sample of %d against their shards' CRLs"
           % len(sample))
    tap.eq(idp_cdp, len(sample), "their CRL DP is their shard's URL")
    k = int(good.serial, 16) % SHARDS + 1
    pem = run(["openssl", "crl", "-inform", "DER", "-in",
               write(os.path.join(tmp, "g.crl"), shard_crl.get(k, b""))], check=False).stdout
    ok, out = ossl_verify(tmp, chain, good.certificate_pem,
                          write(os.path.join(tmp, "g.pem"), pem))
    tap.ok(ok, "an unrevoked certificate of that CA verifies against its shard's CRL", out)
    files = set(os.listdir(crl_dir))
    tap.ok(all("%s-%d.crl" % (BIG_CA, k) in files and "%s-%d.crl.pem" % (BIG_CA, k) in files
               for k in range(1, SHARDS + 1)), "crl_dir has every shard in DER and PEM")


def collision(st):
    """Two CAs publishing at one URL: the newer one is served under it."""
    st.sadmin.call("CaAdmin", "CreateCa", A.CreateCaRequest(
        role=C.CA_ROLE_ISSUING, product_line="widgiot", region="eu-west-1",
        crl_url="http://crl.automatra.net/us-east-1.widgiot.crl"), A.CreateCaResponse)

    def served_issuer():
        crl = http_crl(st, "us-east-1.widgiot.crl")[2]
        return crl is not None and "eu-west-1" in crl.issuer.rfc4514_string()
    tap.ok(wait_for(served_issuer), "two CAs with one crl_url: the newer one's CRL is served")
    tap.ok("is the distribution point of CA eu-west-1.widgiot 2026a and of CA"
           " us-east-1.widgiot 2026a" in st.authz.log_text(), "with a warning naming both",
           st.authz.log_text()[-2000:])


def main():
    # On /dev/shm: 10,000 issuances and revocations are 15,000 journal
    # commits, each an fsync on a disk; the CRLs are what is tested here.
    td = TempDir("sf-crl-", memory=True)
    st = None
    try:
        crl_dir = os.path.join(td.path, "crls")
        st = Stack(td.path, regions=("us-east-1",), signer_extra=SIGNER_EXTRA,
                   authz_kw={"http_extra": "crl_dir = %s\ncrl_refresh_seconds = 1" % crl_dir})
        d1, d2 = Device(td.path, "1111"), Device(td.path, "1112")
        st.register([d1, d2])
        e1, e2 = st.enroll(d1), st.enroll(d2)
        chain = basics(st, td.path, crl_dir, e1, e2)
        coalescing(st, td.path)
        renewed_from = served_number(st, "us-east-1.widgiot.crl")
        renewed_at = time.time()
        mosquitto(st, td.path, crl_dir, chain, [(d1, e1), (d2, e2)])
        partitions(st, td.path, crl_dir)
        cli_crl(st, td.path)
        got = wait_for(lambda: served_number(st, "us-east-1.widgiot.crl") > renewed_from,
                       timeout=VALIDITY - REFRESH + 10)
        tap.ok(got, "without revocations, a new CRL before nextUpdate (after %.0f s)"
               % (time.time() - renewed_at))

        collision(st)

        # The signer away: authz serves what it fetched, and says so.
        before = http_crl(st, "us-east-1.widgiot.crl")[3]
        st.signer.stop()
        wait_for(lambda: "serving the CRLs fetched before" in st.authz.log_text(), timeout=10)
        status, _, _, body = http_crl(st, "us-east-1.widgiot.crl")
        tap.ok(status == 200 and body == before, "signer stopped: authz still serves the CRL")
        tap.ok("serving the CRLs fetched before" in st.authz.log_text(),
               "and logs that the signer is away")
        s, _, _, _ = http_crl(st, "nothing.crl")
        tap.eq(s, 404, "an unknown CRL: 404")
        st.authz.stop()
        st.authz.start()

        def up():
            try:
                return st.authz.http_get("/health")[0] == 200
            except OSError:
                return False
        wait_for(up, timeout=10)
        status, _, _, body = http_crl(st, "us-east-1.widgiot.crl")
        tap.ok(status == 200 and body == before,
               "authz restarted with the signer away serves the CRLs from crl_dir")
        status, _, _, body = http_crl(st, "crls.pem")
        tap.ok(status == 200 and body.count(b"BEGIN X509 CRL") == len(st.cas) + 2,
               "and crls.pem (one CRL per CA)")
    except Exception as e:  # noqa: BLE001
        import traceback
        tap.ok(False, "test raised %r" % e, traceback.format_exc())
    finally:
        if st:
            st.stop()
        td.cleanup()
    return tap.done()


if __name__ == "__main__":
    sys.exit(main())
