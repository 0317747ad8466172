#!/usr/bin/python3
"""CA rotation, the end of its overlap, cascading revocation and expiry,
with the CLI against the real signer and authz on a SoftHSM2 token, checked
with stock openssl, the signer's journal (read-only) and authz's registry.

Rotation of an issuing CA: new enrollments come from the new generation and
their chain verifies (openssl verify -x509_strict), the certificates of the
old one still verify with their own chain, the old one issues nothing more.
Then the old generation is revoked with --cascade over 1,000 enrolled
devices (SF_CAROT_DEVICES changes the number): every certificate REVOKED in
the signer's journal and in authz, the CLI's count, each device enrolls
again and gets a certificate from the new generation whose chain verifies.
A second rotation is retired. Expiry: a CA with less validity left than
[limits] ca_min_remaining_days is refused with FAILED_PRECONDITION naming
it, a leaf never outlives its issuer, and `ca list` warns."""
import concurrent.futures
import json
import os
import shlex
import sqlite3
import subprocess
import sys
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import tap  # noqa: E402
from sfharness import (CLI_PATH, SCALE, RpcError, Stack, TempDir, openssl_verify,  # noqa: E402
                       protos, run, show, split_pem)

pb = protos()
C, A, R, P, S = pb.common, pb.ca_admin, pb.registry, pb.provisioning, pb.signer
N = int(os.environ.get("SF_CAROT_DEVICES") or max(100, int(1000 * SCALE)))
CA = "us-east-1.widgiot"


class Dev:
    """A device whose key and CSRs are made in process (1,000 openssl runs
    would take longer than the test)."""

    def __init__(self, device_id):
        self.id = device_id
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.spki = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    def csr(self):
        return x509.CertificateSigningRequestBuilder().subject_name(x509.Name(
            [x509.NameAttribute(NameOID.COMMON_NAME, self.id)])).sign(
            self.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def register(st, devs, region=""):
    recs = [C.DeviceKeyRecord(device_id=d.id, spki_der=d.spki, product_line="widgiot",
                              region=region) for d in devs]
    for i in range(0, len(recs), 1000):
        st.sadmin.call("CaAdmin", "RegisterDeviceKeys",
                       A.RegisterDeviceKeysRequest(records=recs[i:i + 1000]), C.ImportResult)
        st.aadmin.call("Registry", "ImportDevices",
                       R.ImportDevicesRequest(records=recs[i:i + 1000]), C.ImportResult)


def enroll(st, d, region=""):
    return st.device.call("Provisioning", "Enroll",
                          P.EnrollRequest(csr=d.csr(), region=region), P.EnrollResponse)


def enroll_all(st, devs):
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        return list(ex.map(lambda d: enroll(st, d), devs))


def get_ca(st, name, generation=""):
    return st.sadmin.call("CaAdmin", "GetCa", A.GetCaRequest(name=name, generation=generation),
                          C.CaInfo)


def chain(st, name, generation=""):
    return st.sadmin.call("CaAdmin", "GetCaChain",
                          A.GetCaRequest(name=name, generation=generation),
                          A.GetChainResponse).chain_pem


def journal(st, sql, *args):
    """A query on the signer's journal, read-only, while the signer runs."""
    db = sqlite3.connect("file:%s?mode=ro" % st.signer.journal, uri=True)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def ca_id(st, name, generation):
    return journal(st, "SELECT id FROM cas WHERE name = ? AND generation = ?",
                   name, generation)[0][0]


def count_certs(st, cid):
    return journal(st, "SELECT count(*) FROM certs WHERE ca_id = ?", cid)[0][0]


def authz_statuses(st, devs):
    """serial -> status of the certificates authz holds for devs."""
    def one(d):
        return st.aadmin.call("Registry", "ListCertificates",
                              R.ListDeviceCertificatesRequest(device_id=d.id),
                              R.ListDeviceCertificatesResponse).certificates
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        return {c.serial: c.status for cs in ex.map(one, devs) for c in cs}


def verify_all(tmp, chain_pem, leaves):
    """One openssl verify -x509_strict over every leaf: how many are OK."""
    certs = split_pem(chain_pem)
    root, untrusted = os.path.join(tmp, "va-root.pem"), os.path.join(tmp, "va-chain.pem")
    with open(root, "w") as f:
        f.write(certs[-1])
    with open(untrusted, "w") as f:
        f.write("".join(certs[:-1]))
    files = []
    for i, pem in enumerate(leaves):
        files.append(os.path.join(tmp, "va-%d.pem" % i))
        with open(files[-1], "w") as f:
            f.write(pem)
    p = run(["openssl", "verify", "-x509_strict", "-CAfile", root, "-untrusted", untrusted]
            + files, check=False)
    return sum(1 for l in p.stdout.splitlines() if l.endswith(": OK")), p.stdout + p.stderr


def enddate(pem):
    return x509.load_pem_x509_certificate(pem.encode()).not_valid_after


def code_of(fn):
    try:
        fn()
    except RpcError as e:
        return e.code.name, e.details
    return "OK", ""


def rotation(st, tmp, devs):
    """Part 1: rotate the issuing CA with N certificates under it."""
    cli = st.cli
    t0 = time.time()
    old = enroll_all(st, devs)
    tap.diag("%d enrollments in %.1f s" % (len(old), time.time() - t0))
    g1 = get_ca(st, CA).generation
    tap.ok(all(e.serial for e in old), "%d devices enrolled under generation %s" % (N, g1))
    old_chain = chain(st, CA)

    p = cli("ca", "rotate", CA)
    tap.ok(p.returncode == 0 and "retiring" in p.stdout, "ca rotate %s" % CA, show(p))
    new = get_ca(st, CA)
    prev = get_ca(st, CA, g1)
    tap.ok(new.generation != g1 and new.state == C.CA_STATE_ACTIVE,
           "the new generation %s is active" % new.generation)
    tap.eq(prev.state, C.CA_STATE_RETIRING, "the old generation is retiring")
    tap.ok(new.subject == prev.subject and new.certificate_pem != prev.certificate_pem,
           "same subject, new certificate")
    tap.ok(new.crl_url != prev.crl_url and new.generation in new.crl_url,
           "its own CRL URL (%s)" % new.crl_url)
    tap.eq(new.parent_generation, get_ca(st, "widgiot").generation,
           "signed by the intermediate's active generation")
    p = cli("ca", "list")
    rows = [l.split() for l in p.stdout.splitlines() if l.startswith(CA + " ")]
    tap.ok(sorted((r[2], r[4]) for r in rows) ==
           sorted([("retiring", g1), ("active", new.generation)]),
           "ca list: both generations, retiring and active", show(p))

    ids = (ca_id(st, CA, g1), ca_id(st, CA, new.generation))
    before = count_certs(st, ids[0])
    fresh = Dev("fresh-1")
    register(st, [fresh])
    e = enroll(st, fresh)
    new_chain = chain(st, CA)
    tap.ok(e.chain_pem == new_chain and new_chain != old_chain,
           "a new enrollment carries the new generation's chain")
    okv, out = openssl_verify(tmp, e.chain_pem, e.certificate_pem)
    tap.ok(okv, "its chain verifies (openssl verify -x509_strict)", out)
    okv, out = openssl_verify(tmp, old_chain, e.certificate_pem)
    tap.ok(not okv, "and not with the old generation's chain", out)
    for o in old[:3]:
        okv, out = openssl_verify(tmp, o.chain_pem, o.certificate_pem)
        tap.ok(okv and o.chain_pem == old_chain,
               "an old certificate still verifies with its own chain (%s)" % o.serial, out)
    tap.eq(count_certs(st, ids[0]), before, "the old generation issued nothing more")
    tap.eq(count_certs(st, ids[1]), 1, "the new one issued the new certificate")
    return g1, new.generation, ids, old, fresh


def cascade(st, tmp, devs, g1, g2, ids, old):
    """Part 2: revoke the old generation with --cascade, then re-enroll."""
    cli = st.cli
    under = count_certs(st, ids[0])
    p = cli("ca", "revoke", CA, "--reason", "key-compromise", "--cascade")
    tap.ok(p.returncode == 5 and g1 in p.stderr and g2 in p.stderr,
           "without --generation, with two generations: exit 5 naming both", show(p))
    p = cli("ca", "revoke", CA, "--generation", g1, "--cascade")
    tap.ok(p.returncode == 2 and "--reason" in p.stderr, "--reason is required: exit 2", show(p))
    t0 = time.time()
    p = cli("ca", "revoke", CA, "--generation", g1, "--reason", "key-compromise", "--cascade",
            "--batch", "300", timeout=600)
    dt = time.time() - t0
    tap.diag("cascade revocation of %d certificates (batches of 300): %.2f s" % (under, dt))
    tap.ok(p.returncode == 0 and ("revoked 1 CA and %d certificates" % under) in p.stdout,
           "ca revoke --cascade: the count (%d: the devices' and authz's TLS"
           " certificate)" % under, show(p))
    tap.ok("\r" not in p.stderr and p.stderr == "",
           "no progress lines when stderr is not a terminal", show(p))
    tap.ok(("%s/%s" % (CA, g1)) in p.stdout and "widgiot/" in p.stdout,
           "the CRLs that change are named (the CA's and its parent's)", show(p))

    rows = journal(st, "SELECT status, revocation_reason, revoked_at FROM certs"
                   " WHERE ca_id = ?", ids[0])
    tap.ok(len(rows) == under and all(r[0] == C.CERTIFICATE_STATUS_REVOKED for r in rows),
           "the journal: every certificate of generation %s REVOKED" % g1)
    tap.ok(all(r[1] == C.REVOCATION_REASON_CA_COMPROMISE for r in rows),
           "for cACompromise (the CA's key was compromised)")
    ca = get_ca(st, CA, g1)
    tap.ok(ca.state == C.CA_STATE_REVOKED and
           ca.revocation_reason == C.REVOCATION_REASON_KEY_COMPROMISE and
           all(r[2] == ca.revoked_at for r in rows),
           "the CA REVOKED for keyCompromise, its certificates at its time")
    own = journal(st, "SELECT status FROM certs WHERE serial = ? AND ca_id = ?",
                  ca.serial, ca_id(st, "widgiot", ca.parent_generation))
    tap.eq(own, [(C.CERTIFICATE_STATUS_REVOKED,)],
           "its own certificate revoked in its parent's scope")
    tap.eq(get_ca(st, CA).generation, g2, "the new generation stays active")

    # The CRLs: the revoked generation's lists every certificate it issued,
    # its parent's lists the CA itself, and both verify with openssl.
    def crl(name, gen):
        r = st.sadmin.call("CaAdmin", "GetCrl", A.GetCrlAdminRequest(ca_name=name,
                                                                      generation=gen),
                           A.GetCrlAdminResponse)
        return r, x509.load_der_x509_crl(r.crl_der)
    # The CRL task runs soon after the cascade's kicks (change_delay_ms).
    end = time.time() + 30
    while True:
        r, c = crl(CA, g1)
        pr, pc = crl("widgiot", ca.parent_generation)
        listed = {e.serial_number for e in c}
        if (len(listed) >= under and int(ca.serial, 16) in {e.serial_number for e in pc}) \
                or time.time() > end:
            break
        time.sleep(0.3)
    tap.ok({int(o.serial, 16) for o in old} <= listed and len(listed) >= under,
           "the revoked generation's CRL lists all %d certificates it issued (%d entries)"
           % (under, len(listed)))
    tap.ok(int(ca.serial, 16) in {e.serial_number for e in pc},
           "the intermediate's CRL lists the revoked CA's own certificate")
    for what, resp, issuer in ((CA, r, chain(st, CA, g1)), ("widgiot", pr,
                                chain(st, "widgiot", ca.parent_generation))):
        path = os.path.join(tmp, "cascade-%s.crl" % what)
        with open(path, "w") as f:
            f.write(resp.crl_pem)
        cafile = os.path.join(tmp, "cascade-%s-issuer.pem" % what)
        with open(cafile, "w") as f:
            f.write(issuer)
        p = run(["openssl", "crl", "-in", path, "-noout", "-verify", "-CAfile", cafile],
                check=False)
        tap.ok(p.returncode == 0 and "verify OK" in (p.stdout + p.stderr),
               "openssl crl -verify: the %s CRL is signed by its CA" % what, p.stdout + p.stderr)
    az = authz_statuses(st, devs)
    tap.ok(all(az.get(o.serial) == C.CERTIFICATE_STATUS_REVOKED for o in old),
           "authz: all %d device certificates REVOKED" % len(old))
    dv = st.aadmin.call("Registry", "GetDevice", R.GetDeviceRequest(device_id=devs[0].id),
                        R.Device)
    tap.ok(dv.current_serial == "" and dv.state == C.DEVICE_STATE_REGISTERED,
           "a device no longer holds its revoked certificate")

    t0 = time.time()
    again = enroll_all(st, devs)
    tap.diag("%d re-enrollments in %.1f s" % (len(again), time.time() - t0))
    tap.ok(all(a.serial and a.chain_pem == chain(st, CA) for a in again[:1]) and
           len({a.chain_pem for a in again}) == 1 and count_certs(st, ids[1]) == N + 1,
           "every device enrolled again, from generation %s" % g2)
    good, out = verify_all(tmp, again[0].chain_pem, [a.certificate_pem for a in again])
    tap.eq(good, N, "every new certificate verifies with its chain (openssl verify"
           " -x509_strict)")
    if good != N:
        tap.diag(out[-2000:])

    p = cli("--json", "ca", "revoke", CA, "--generation", g1, "--reason", "key-compromise",
            "--cascade")
    try:
        j = json.loads(p.stdout)
    except ValueError:
        j = {}
    tap.ok(p.returncode == 0 and j.get("certificates_revoked") == 0 and
           j.get("cas_revoked") == 0 and j.get("ca", {}).get("state") == "revoked",
           "again: nothing left, exit 0 (--json)", show(p))
    p = cli("ca", "revoke", CA, "--generation", g1, "--reason", "superseded")
    tap.ok(p.returncode == 8 and "keyCompromise" in p.stderr,
           "with another reason: exit 8 naming the first", show(p))
    e = code_of(lambda: st.sadmin.call(
        "CaAdmin", "IssueServerCertificate", A.IssueServerCertificateRequest(
            csr=Dev("srv").csr(), ca_name=CA, dns_names=["x.example"]),
        A.IssueServerCertificateResponse))
    tap.eq(e[0], "OK", "issue-server --ca %s is served by the active generation" % CA)


def retire(st, g2):
    """Part 3: a second rotation, retired."""
    cli = st.cli
    p = cli("ca", "retire", CA)
    tap.ok(p.returncode == 8 and "rotate" in p.stderr,
           "ca retire with nothing retiring: exit 8", show(p))
    p = cli("--json", "ca", "rotate", CA)
    j = json.loads(p.stdout) if p.returncode == 0 else {}
    g3 = j.get("ca", {}).get("generation")
    tap.ok(p.returncode == 0 and j["previous"]["generation"] == g2 and
           j["previous"]["state"] == "retiring", "ca rotate --json: %s -> %s" % (g2, g3),
           show(p))
    p = cli("ca", "retire", "widgiot")
    tap.ok(p.returncode == 8, "ca retire of the intermediate (nothing retiring): exit 8",
           show(p))
    p = cli("ca", "retire", CA)
    tap.ok(p.returncode == 0 and "state:            retired" in p.stdout,
           "ca retire %s: generation %s retired" % (CA, g2), show(p))
    p = cli("ca", "retire", CA, "--generation", g2)
    tap.ok(p.returncode == 0, "retiring it again changes nothing", show(p))
    p = cli("ca", "retire", CA, "--generation", g3)
    tap.ok(p.returncode == 8 and "active" in p.stderr, "the active one: exit 8", show(p))
    p = cli("ca", "list")
    tap.ok(g2 not in p.stdout and g3 in p.stdout, "ca list leaves the retired one out",
           show(p))
    p = cli("ca", "list", "--all")
    tap.ok(g2 in p.stdout and "retired" in p.stdout, "ca list --all shows it", show(p))


def expiry(st, tmp):
    """Part 4: a CA close to its end ([limits] ca_min_remaining_days = 2)."""
    cli = st.cli
    for region, days in (("ap-short-1", 1), ("ap-mid-1", 3)):
        st.sadmin.call("CaAdmin", "CreateCa", A.CreateCaRequest(
            role=C.CA_ROLE_ISSUING, product_line="widgiot", region=region,
            validity_days=days), A.CreateCaResponse)
    short, mid = Dev("exp-short"), Dev("exp-mid")
    register(st, [short], "ap-short-1")
    register(st, [mid], "ap-mid-1")
    code, msg = code_of(lambda: enroll(st, short, "ap-short-1"))
    tap.ok(code == "FAILED_PRECONDITION" and "ap-short-1.widgiot" in msg and
           "ca_min_remaining_days" in msg,
           "enroll under a one-day CA: FAILED_PRECONDITION naming it", msg)
    code, msg = code_of(lambda: st.signer.issuance_client().call(
        "Signer", "Issue", S.IssueRequest(csr=short.csr(), product_line="widgiot",
                                          region="ap-short-1"), S.IssueResponse))
    tap.ok(code == "FAILED_PRECONDITION" and "ap-short-1.widgiot" in msg,
           "Signer.Issue straight: the same", msg)
    code, msg = code_of(lambda: st.sadmin.call(
        "CaAdmin", "IssueServerCertificate", A.IssueServerCertificateRequest(
            csr=Dev("srv2").csr(), ca_name="ap-short-1.widgiot", dns_names=["y.example"]),
        A.IssueServerCertificateResponse))
    tap.eq(code, "FAILED_PRECONDITION", "a server certificate from it: refused too")

    e = enroll(st, mid, "ap-mid-1")
    ca = get_ca(st, "ap-mid-1.widgiot")
    tap.ok(enddate(e.certificate_pem) == enddate(ca.certificate_pem),
           "a 365-day leaf from a 3-day CA ends when its CA ends (%s)" %
           enddate(e.certificate_pem))
    okv, out = openssl_verify(tmp, e.chain_pem, e.certificate_pem)
    tap.ok(okv, "and verifies", out)

    p = cli("ca", "list", "--warn-days", "30")
    warned = [l.split()[0] for l in p.stdout.splitlines()[1:] if l.split()[-1] != "-"]
    tap.ok(p.returncode == 0 and sorted(warned) == ["ap-mid-1.widgiot", "ap-short-1.widgiot"]
           and "expires in" in p.stdout,
           "ca list --warn-days 30: the two short CAs marked", show(p))
    tap.ok("warning: CA ap-short-1.widgiot" in p.stderr and
           "secretfree ca rotate ap-short-1.widgiot" in p.stderr and
           "us-east-1" not in p.stderr, "with a line each on stderr", show(p))
    p = cli("--json", "ca", "list", "--warn-days", "0")
    j = json.loads(p.stdout) if p.returncode == 0 else {"cas": [{}]}
    tap.ok(p.stderr == "" and all(c.get("expiry_warning", 1) is None for c in j["cas"]),
           "--warn-days 0: no warnings (--json: expiry_warning null)", show(p))
    return mid


def progress(st, mid):
    """Part 5: on a terminal, ca revoke shows its progress on stderr."""
    more = [Dev("exp-mid-%d" % i) for i in range(2)]
    register(st, more, "ap-mid-1")
    for d in more:
        enroll(st, d, "ap-mid-1")
    cmd = " ".join(shlex.quote(a) for a in (
        CLI_PATH, "ca", "revoke", "ap-mid-1.widgiot", "--reason", "cessation-of-operation",
        "--cascade", "--batch", "1"))
    # Bytes: text mode would turn the carriage returns into newlines.
    p = subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True,
                       env=st.cli.env, timeout=120)
    tap.ok(p.returncode == 0 and b"\r\033[K1 certificates revoked, 2 left" in p.stdout and
           b"\r\033[K2 certificates revoked, 1 left" in p.stdout and
           b"revoked 1 CA and 3 certificates" in p.stdout,
           "ca revoke on a terminal: a progress line per batch, then the count",
           repr(p.stdout))


def refusals(st):
    cli = st.cli
    p = cli("ca", "rotate", "root")
    tap.ok(p.returncode == 8 and "root CA is not rotated" in p.stderr,
           "ca rotate root: exit 8, saying why", show(p))
    p = cli("ca", "revoke", "root", "--reason", "key-compromise")
    tap.ok(p.returncode == 8 and "root CA cannot be revoked" in p.stderr,
           "ca revoke root: exit 8", show(p))
    p = cli("ca", "revoke", "widgiot", "--reason", "superseded")
    tap.ok(p.returncode == 8 and "cascade" in p.stderr,
           "an intermediate with live issuing CAs, without --cascade: exit 8", show(p))
    p = cli("ca", "rotate", "nowhere.widgiot")
    tap.ok(p.returncode == 3, "ca rotate of an unknown CA: exit 3", show(p))
    p = cli("ca", "rotate", CA, "--generation", "Bad_Gen")
    tap.ok(p.returncode == 5, "a bad generation name: exit 5", show(p))
    for cmd in ("rotate", "retire", "revoke"):
        p = cli("ca", cmd, "--help")
        tap.ok(p.returncode == 0 and ("Usage: secretfree ca %s" % cmd) in p.stdout and
               "Example:" in p.stdout, "ca %s --help" % cmd, show(p))


def authz_down(st, g2, ids):
    """Part 6: authz down: the signer revokes, the CLI says to reconcile."""
    under = count_certs(st, ids[1])
    st.authz.stop()
    p = st.cli("ca", "revoke", CA, "--generation", g2, "--reason", "superseded", "--cascade")
    tap.ok(p.returncode == 10 and "reconcile" in p.stderr and
           ("revoked 1 CA and %d certificates" % under) in p.stdout,
           "authz down: the revocation completes at the signer, exit 10 saying to reconcile",
           show(p))
    rows = journal(st, "SELECT count(*) FROM certs WHERE ca_id = ? AND status = ?", ids[1],
                   C.CERTIFICATE_STATUS_REVOKED)
    tap.eq(rows[0][0], under, "the journal has every one of them revoked")


def main():
    td = TempDir("sf-carot-")
    st = None
    try:
        st = Stack(td.path, regions=("us-east-1",),
                   signer_kw={"limits_extra": "ca_min_remaining_days = 2\n"})
        devs = [Dev("dev-%05d" % i) for i in range(N)]
        register(st, devs)
        g1, g2, ids, old, _ = rotation(st, td.path, devs)
        cascade(st, td.path, devs, g1, g2, ids, old)
        retire(st, g2)
        progress(st, expiry(st, td.path))
        refusals(st)
        authz_down(st, g2, ids)
    except Exception as e:  # noqa: BLE001
        import traceback
        tap.ok(False, "test raised %r" % e, traceback.format_exc())
    finally:
        if st:
            st.stop()
        td.cleanup()
    tap.done()


if __name__ == "__main__":
    main()
