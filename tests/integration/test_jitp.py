#!/usr/bin/python3
"""Just-in-time provisioning from a manufacturer's CA (real signer, authz
with its device TLS listener, SoftHSM2, the CLI, openssl; the
manufacturer's CA, birth certificates and CRL made here at test time):

- before its CA is registered, a birth certificate is refused at the TLS
  handshake (UNAVAILABLE); `ca register-manufacturer` while authz runs,
  and the next connection is accepted without a restart;
- Enroll over TLS with the birth certificate as client certificate
  registers the device on first contact: certificate issued (openssl
  verify up to our root), the device in the signer (origin birth, birth
  serial) and in authz (origin, `device show`), thing, group and policies
  from the product line's template;
- a second first enrollment with the birth certificate is refused
  (PERMISSION_DENIED, naming allow-birth), the idempotent retry still
  gets the same certificate; `device allow-birth` allows it once;
- refused: a birth certificate from an unregistered CA (TLS handshake);
  an expired one (TLS handshake, and by the signer when sent straight to
  it); a revoked one once the manufacturer's CRL is registered
  (PERMISSION_DENIED, authz); CN or key other than the CSR's;
- a hostile authz sending a birth certificate straight to Signer.Issue
  for a product line whose manufacturers do not include its CA is refused
  by the signer, and without one an unknown device is NOT_FOUND;
- Renew over TLS with the birth certificate is refused;
- EST simplereenroll (curl, mutual TLS) with a birth certificate as the
  client certificate registers an unknown device the same way; one from
  an unregistered CA is 403 and registers nothing; a factory device's
  CSR with a birth certificate is 403 (it enrolls by its registered key);
- the CLI: register-manufacturer refuses a non-CA, a key and an unknown
  product line; manufacturers lists (--json); manufacturer-crl refuses an
  older CRL; --help of each."""
import base64
import datetime
import json
import os
import sqlite3
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import grpc  # noqa: E402
import tap  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: E402
from sfharness import (Client, Device, Stack, TempDir, expect_error,  # noqa: E402
                       free_port, openssl_verify, protos, show)

pb = protos()
C, A, P, R, S = pb.common, pb.ca_admin, pb.provisioning, pb.registry, pb.signer
SC = grpc.StatusCode
NOW = datetime.datetime.now(datetime.timezone.utc)
DAY = datetime.timedelta(days=1)
GADGET = ("[product.gadget]\ndisplay_name = Gadget\n"
          "device_subject = /O=Automatra/OU=Gadget/CN=${device_id}\n")


def write(path, data):
    with open(path, "w" if isinstance(data, str) else "wb") as f:
        f.write(data)
    return path


def pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM).decode()


class Mfr:
    """A manufacturer's root CA (key kept here, as the factory would)."""

    def __init__(self, cn):
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme Devices"),
                          x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        self.name = name
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                     .public_key(self.key.public_key())
                     .serial_number(x509.random_serial_number())
                     .not_valid_before(NOW - DAY).not_valid_after(NOW + 365 * DAY)
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
                     .add_extension(x509.KeyUsage(False, False, False, False, False, True,
                                                  True, False, False), True)
                     .sign(self.key, hashes.SHA256()))
        self.pem = pem(self.cert)

    def birth(self, device_id, pubkey, start=None, end=None, serial=None):
        """A birth certificate for device_id's public key."""
        b = (x509.CertificateBuilder()
             .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device_id)]))
             .issuer_name(self.name).public_key(pubkey)
             .serial_number(serial or x509.random_serial_number())
             .not_valid_before(start or NOW - DAY).not_valid_after(end or NOW + 3650 * DAY)
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
             .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False))
        return b.sign(self.key, hashes.SHA256())

    def crl(self, serials, number):
        b = (x509.CertificateRevocationListBuilder().issuer_name(self.name)
             .last_update(NOW - DAY).next_update(NOW + 7 * DAY)
             .add_extension(x509.CRLNumber(number), False))
        for s in serials:
            b = b.add_revoked_certificate(x509.RevokedCertificateBuilder()
                                          .serial_number(s).revocation_date(NOW - DAY)
                                          .build())
        return b.sign(self.key, hashes.SHA256()).public_bytes(
            serialization.Encoding.PEM).decode()


def pubkey(dev):
    with open(dev.key, "rb") as f:
        return serialization.load_pem_private_key(f.read(), None).public_key()


class Env:
    def __init__(self, tmp):
        self.tmp = tmp
        # Room for the live certificates the reuse cases make.
        # A second product line, for a manufacturer registered elsewhere.
        self.st = Stack(tmp, regions=("us-east-1",), signer_kw={
            "device_live": 4}, signer_extra=GADGET)
        # Client certificates: our root, and the manufacturer CAs.
        self.root_file = write(os.path.join(tmp, "root.pem"), self.st.root_pem)
        self.https_port = free_port()
        self.st.authz.stop()
        self.st.authz.write_conf(authz_extra="tls_client_ca = %s\n" % self.root_file,
                                 http_extra="tls_listen = 127.0.0.1:%d\n" % self.https_port)
        self.st.authz.start()
        self.hostile = self.st.signer.issuance_client()

    def tls(self, dev, cert_pem):
        with open(dev.key, "rb") as f:
            key = f.read()
        creds = grpc.ssl_channel_credentials(
            root_certificates=self.st.root_pem.encode(), private_key=key,
            certificate_chain=cert_pem.encode())
        return Client(self.st.authz.device, creds)

    def enroll(self, dev, cert_pem, key="", csr=None):
        cl = self.tls(dev, cert_pem)
        try:
            return cl.call("Provisioning", "Enroll",
                           P.EnrollRequest(csr=csr or dev.csr(), idempotency_key=key),
                           P.EnrollResponse, timeout=20)
        finally:
            cl.close()

    def sdevice(self, device_id):
        return self.st.sadmin.call("CaAdmin", "GetDeviceKey", A.GetDeviceKeyRequest(
            device_id=device_id), C.DeviceKeyInfo)

    def adevice(self, device_id):
        return self.st.aadmin.call("Registry", "GetDevice", R.GetDeviceRequest(
            device_id=device_id), R.Device)


def refused(fn, code, word=None):
    """fn fails with code (and its message holds word): (ok, detail)."""
    try:
        fn()
    except Exception as e:  # noqa: BLE001
        c = getattr(e, "code", None)
        d = getattr(e, "details", str(e))
        return c == code and (word is None or word in (d or "")), "%s: %s" % (c, d)
    return False, "it succeeded"


def first_contact(env, acme, other):
    """Unregistered CA refused at the handshake; registered while authz
    runs; JITP then works on the next connection."""
    st = env.st
    d = Device(env.tmp, "acme-0001")
    birth = pem(acme.birth(d.id, pubkey(d)))
    write(os.path.join(env.tmp, "acme-0001.birth.pem"), birth)
    good, out = refused(lambda: env.enroll(d, birth, key="j1"), SC.UNAVAILABLE)
    tap.ok(good, "before its CA is registered, the birth certificate fails the TLS"
           " handshake (UNAVAILABLE)", out)
    acme_file = write(os.path.join(env.tmp, "acme.pem"), acme.pem)
    p = st.cli("ca", "register-manufacturer", acme_file, "--product-line", "widgiot")
    tap.eq(p.returncode, 0, "ca register-manufacturer while authz runs", show(p))
    tap.ok("acme-root-ca" in p.stdout, "  named after the CA's CN", p.stdout)
    p = st.cli("ca", "register-manufacturer", acme_file, "--product-line", "widgiot")
    tap.eq(p.returncode, 0, "  registering it again changes nothing", show(p))
    r = env.enroll(d, birth, key="j1")
    tap.ok(r.serial != "", "JITP over TLS with the birth certificate, no restart: issued",
           r.serial)
    good, out = openssl_verify(env.tmp, r.chain_pem, r.certificate_pem)
    tap.ok(good, "  the certificate chains to our root (openssl verify)", out)
    leaf = x509.load_pem_x509_certificate(r.certificate_pem.encode())
    tap.eq(leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value, d.id,
           "  CN = the device id from the birth certificate")
    tap.eq(leaf.public_key().public_bytes(serialization.Encoding.DER,
           serialization.PublicFormat.SubjectPublicKeyInfo), d.spki_der(),
           "  with the birth certificate's key")
    k = env.sdevice(d.id)
    bserial = "%X" % x509.load_pem_x509_certificate(birth.encode()).serial_number
    tap.eq((k.origin, k.product_line, k.birth_reuse), ("birth:acme-root-ca", "widgiot", False),
           "  registered at the signer, origin birth")
    tap.eq(k.birth_serial.lstrip("0"), bserial.lstrip("0"),
           "  with the birth certificate's serial")
    a = env.adevice(d.id)
    tap.eq((a.origin, a.product_line, a.current_serial),
           ("birth:acme-root-ca", "widgiot", r.serial), "  registered in authz, origin birth")
    p = st.cli("device", "show", d.id, "--json")
    j = json.loads(p.stdout) if p.returncode == 0 else {}
    tap.eq(j.get("origin") or j.get("device", {}).get("origin"), "birth:acme-root-ca",
           "  `device show --json` gives its origin", show(p))
    p = st.cli("device", "show", d.id)
    tap.ok("birth:acme-root-ca" in p.stdout, "  `device show` prints it", show(p))
    t = st.aadmin.call("Registry", "GetThing", R.GetThingRequest(name=d.id), R.Thing)
    attrs = {x.name: x.value for x in t.attributes}
    tap.eq((attrs.get("serialNumber"), "widgiot-devices" in list(t.groups)),
           (d.id, True), "  thing and group from the widgiot template")
    tap.eq(t.certificate_serial, r.serial, "  the thing holds the certificate")
    db = sqlite3.connect("file:%s?mode=ro" % st.authz.registry, uri=True)
    try:
        pol = [x[0] for x in db.execute("SELECT policy FROM cert_policies WHERE serial = ?",
                                        (r.serial,))]
    finally:
        db.close()
    tap.eq(pol, ["widgiot-telemetry"], "  the certificate carries the template's policy")
    # Another, never registered CA: the handshake fails.
    d9 = Device(env.tmp, "other-0001")
    good, out = refused(lambda: env.enroll(d9, pem(other.birth(d9.id, pubkey(d9)))),
                        SC.UNAVAILABLE)
    tap.ok(good, "a birth certificate from an unregistered CA: TLS handshake refused"
           " (UNAVAILABLE)", out)
    tap.ok(expect_error(lambda: env.sdevice(d9.id), SC.NOT_FOUND) is not None,
           "  and nothing registered")
    return d, birth, r


def reuse(env, acme, d, birth, r1):
    st = env.st
    r = env.enroll(d, birth, key="j1")
    tap.eq((r.serial, r.replayed), (r1.serial, True),
           "the idempotent retry gets the same certificate")
    good, out = refused(lambda: env.enroll(d, birth, key="j2"), SC.PERMISSION_DENIED,
                        "allow-birth")
    tap.ok(good, "a second first enrollment with the birth certificate: PERMISSION_DENIED"
           " naming allow-birth", out)
    r = env.enroll(d, birth, key="j1")
    tap.eq(r.serial, r1.serial, "  the retry still gets its certificate after that")
    p = st.cli("device", "allow-birth", d.id)
    tap.eq(p.returncode, 0, "device allow-birth", show(p))
    tap.eq(env.sdevice(d.id).birth_reuse, True, "  the signer records it")
    r3 = env.enroll(d, birth, key="j3")
    tap.ok(r3.serial not in ("", r1.serial), "  then the birth certificate enrolls once more",
           r3.serial)
    tap.eq(env.sdevice(d.id).birth_reuse, False, "  which uses the leave up")
    good, out = refused(lambda: env.enroll(d, birth, key="j4"), SC.PERMISSION_DENIED)
    tap.ok(good, "  and the next is refused again", out)
    p = st.cli("device", "allow-birth", "nobody-42")
    tap.eq(p.returncode, 3, "allow-birth of an unknown device: exit 3", show(p))
    # Renewal: the birth certificate is no current certificate.
    cl = env.tls(d, birth)
    try:
        good, out = refused(lambda: cl.call("Provisioning", "Renew", P.RenewRequest(
            csr=d.csr(), idempotency_key="rn-1"), P.EnrollResponse), SC.PERMISSION_DENIED,
            "not a certificate we issued")
    finally:
        cl.close()
    tap.ok(good, "Renew over TLS with the birth certificate: PERMISSION_DENIED", out)
    # A renewal with our certificate; the manufacturer's CA, trusted on the
    # listener, mints one with the pending serial: no acknowledgement.
    cl = env.tls(d, r3.certificate_pem + r3.chain_pem)
    try:
        rn = cl.call("Provisioning", "Renew", P.RenewRequest(csr=d.csr(),
                     idempotency_key="rn-2"), P.EnrollResponse)
    finally:
        cl.close()
    tap.eq(rn.state, P.ENROLLMENT_STATE_PENDING_ACK, "Renew over TLS with our certificate")
    forged = pem(acme.birth(d.id, pubkey(d), serial=int(rn.serial, 16)))
    cl = env.tls(d, forged)
    try:
        good, out = refused(lambda: cl.call("Provisioning", "Acknowledge",
                            P.AcknowledgeRequest(enrollment_id=rn.enrollment_id),
                            P.AcknowledgeResponse), SC.PERMISSION_DENIED)
    finally:
        cl.close()
    tap.ok(good, "  a manufacturer's certificate with the pending serial does not"
           " acknowledge it", out)
    sc = st.sadmin.call("CaAdmin", "GetCertificate", A.GetCertificateRequest(
        serial=rn.serial), C.CertificateInfo)
    tap.eq(sc.status, C.CERTIFICATE_STATUS_PENDING_ACK, "  the renewal is still pending")
    cl = env.tls(d, rn.certificate_pem + rn.chain_pem)
    try:
        cl.call("Provisioning", "Acknowledge", P.AcknowledgeRequest(
            enrollment_id=rn.enrollment_id), P.AcknowledgeResponse)
    finally:
        cl.close()
    sc = st.sadmin.call("CaAdmin", "GetCertificate", A.GetCertificateRequest(
        serial=rn.serial), C.CertificateInfo)
    tap.eq(sc.status, C.CERTIFICATE_STATUS_ACTIVE, "  the certificate itself does")


def est(env, path, dev, cert_pem, csr_der):
    """curl POST of an EST request with cert_pem and dev's key as the
    TLS client certificate: (status, body)."""
    n = len(os.listdir(env.tmp))
    certf = write(os.path.join(env.tmp, "est%d.crt" % n), cert_pem)
    body = write(os.path.join(env.tmp, "est%d.b64" % n), base64.encodebytes(csr_der).decode())
    out = os.path.join(env.tmp, "est%d.out" % n)
    p = subprocess.run(["curl", "-sS", "--cacert", env.root_file, "--cert", certf, "--key",
                        dev.key, "-o", out, "-w", "%{http_code}", "-X", "POST",
                        "-H", "Content-Type: application/pkcs10", "--data-binary", "@" + body,
                        "https://localhost:%d/.well-known/est/%s" % (env.https_port, path)],
                       capture_output=True, text=True, timeout=60)
    data = open(out, "rb").read() if os.path.exists(out) else p.stderr.encode()
    return int(p.stdout or 0), data


def est_doors(env, acme, other):
    """Just-in-time provisioning through EST simplereenroll."""
    d = Device(env.tmp, "acme-0100")
    birth = pem(acme.birth(d.id, pubkey(d)))
    st, body = est(env, "simplereenroll", d, birth, d.csr(der=True))
    tap.eq(st, 200, "EST simplereenroll with a birth certificate of a registered"
           " manufacturer: 200", body[:300])
    p7 = write(os.path.join(env.tmp, "acme-0100.p7"), body.decode(errors="replace"))
    p = subprocess.run("openssl base64 -d -in %s | openssl pkcs7 -inform DER -print_certs" % p7,
                       shell=True, capture_output=True, text=True)
    certs = [c for c in p.stdout.split("-----END CERTIFICATE-----") if "BEGIN" in c]
    leaf = x509.load_pem_x509_certificate(
        (certs[0][certs[0].index("-----BEGIN"):] + "-----END CERTIFICATE-----\n").encode()) \
        if certs else None
    tap.ok(leaf is not None and leaf.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        == d.spki_der(), "  openssl pkcs7 -print_certs: our certificate for the birth"
           " certificate's key", p.stdout[:300] + p.stderr)
    k = env.sdevice(d.id)
    tap.eq((k.origin, k.product_line), ("birth:acme-root-ca", "widgiot"),
           "  registered at the signer, origin birth")
    tap.eq(env.adevice(d.id).origin, "birth:acme-root-ca", "  and in authz")
    st, body = est(env, "simplereenroll", d, birth, d.csr(der=True))
    tap.eq(st, 403, "  the birth certificate again (a second first enrollment): 403",
           body[:300])
    d2 = Device(env.tmp, "other-0100")
    st, body = est(env, "simplereenroll", d2, pem(other.birth(d2.id, pubkey(d2))),
                   d2.csr(der=True))
    tap.eq(st, 403, "EST simplereenroll with a birth certificate of an unregistered CA:"
           " 403", body[:300])
    tap.ok(expect_error(lambda: env.sdevice(d2.id), SC.NOT_FOUND) is not None,
           "  and nothing registered")
    # A factory device (imported key) with a birth certificate: refused.
    f = Device(env.tmp, "fact-0100")
    env.st.register([f])
    st, body = est(env, "simplereenroll", f, pem(acme.birth(f.id, pubkey(f))),
                   f.csr(der=True))
    tap.eq(st, 403, "a factory device's CSR with a birth certificate: 403", body[:300])
    tap.ok(b"factory list" in body, "  saying it enrolls by its registered key", body[:300])
    tap.ok(not env.adevice(f.id).origin.startswith("birth:"),
           "  and it stays a factory device", env.adevice(f.id).origin)
    return d


def refusals(env, acme, other):
    st = env.st
    # Expired: the TLS handshake, and the signer itself.
    d = Device(env.tmp, "acme-0002")
    old = pem(acme.birth(d.id, pubkey(d), start=NOW - 30 * DAY, end=NOW - DAY))
    good, out = refused(lambda: env.enroll(d, old), SC.UNAVAILABLE)
    tap.ok(good, "an expired birth certificate: TLS handshake refused", out)
    good, out = refused(lambda: env.hostile.call("Signer", "Issue", S.IssueRequest(
        csr=d.csr(), product_line="widgiot", region="us-east-1",
        birth_certificate=old.encode()), S.IssueResponse), SC.PERMISSION_DENIED, "expired")
    tap.ok(good, "  sent straight to Signer.Issue: PERMISSION_DENIED (expired)", out)
    # Hostile authz: a CA registered for another product line only.
    a = st.sadmin
    a.call("CaAdmin", "CreateCa", A.CreateCaRequest(role=C.CA_ROLE_INTERMEDIATE,
           product_line="gadget"), A.CreateCaResponse)
    a.call("CaAdmin", "CreateCa", A.CreateCaRequest(role=C.CA_ROLE_ISSUING,
           product_line="gadget", region="us-east-1"), A.CreateCaResponse)
    zeta = Mfr("Zeta Root CA")
    zf = write(os.path.join(env.tmp, "zeta.pem"), zeta.pem)
    p = st.cli("ca", "register-manufacturer", zf, "--product-line", "gadget")
    tap.eq(p.returncode, 0, "a manufacturer registered for product line gadget", show(p))
    dz = Device(env.tmp, "zeta-0001")
    zb = pem(zeta.birth(dz.id, pubkey(dz))).encode()
    good, out = refused(lambda: env.hostile.call("Signer", "Issue", S.IssueRequest(
        csr=dz.csr(), product_line="widgiot", region="us-east-1",
        birth_certificate=zb), S.IssueResponse), SC.PERMISSION_DENIED,
        "registered manufacturer")
    tap.ok(good, "a hostile authz sends Signer.Issue its birth certificate for widgiot,"
           " whose manufacturers do not include it: PERMISSION_DENIED", out)
    tap.ok(expect_error(lambda: env.sdevice(dz.id), SC.NOT_FOUND) is not None,
           "  nothing registered at the signer")
    r = env.hostile.call("Signer", "Issue", S.IssueRequest(
        csr=dz.csr(), product_line="gadget", region="us-east-1", birth_certificate=zb),
        S.IssueResponse)
    tap.ok(r.serial != "" and env.sdevice(dz.id).product_line == "gadget",
           "  for gadget the signer issues and registers it there", r.serial)
    good, out = refused(lambda: env.enroll(dz, zb.decode(), key="z1"),
                        SC.PERMISSION_DENIED, "allow-birth")
    tap.ok(good, "  which used its birth certificate: the device itself is then refused",
           out)
    dz2 = Device(env.tmp, "zeta-0002")
    rz = env.enroll(dz2, pem(zeta.birth(dz2.id, pubkey(dz2))), key="z2")
    tap.eq((rz.serial != "", env.adevice(dz2.id).product_line, env.adevice(dz2.id).origin),
           (True, "gadget", "birth:zeta-root-ca"),
           "authz: JITP into the manufacturer's product line")
    # A CA registered nowhere.
    d2 = Device(env.tmp, "other-0002")
    ob = pem(other.birth(d2.id, pubkey(d2)))
    good, out = refused(lambda: env.hostile.call("Signer", "Issue", S.IssueRequest(
        csr=d2.csr(), product_line="widgiot", region="us-east-1",
        birth_certificate=ob.encode()), S.IssueResponse), SC.PERMISSION_DENIED,
        "registered manufacturer")
    tap.ok(good, "a hostile authz sends Signer.Issue a birth certificate of a CA not"
           " registered for widgiot: PERMISSION_DENIED", out)
    good, out = refused(lambda: env.hostile.call("Signer", "Issue", S.IssueRequest(
        csr=d2.csr(), product_line="widgiot", region="us-east-1"), S.IssueResponse),
        SC.NOT_FOUND)
    tap.ok(good, "  without one, an unknown device: NOT_FOUND", out)
    tap.ok(expect_error(lambda: env.sdevice(d2.id), SC.NOT_FOUND) is not None,
           "  nothing registered at the signer")
    # CN and key must be the CSR's.
    d3, d4 = Device(env.tmp, "acme-0003"), Device(env.tmp, "acme-0004")
    b3 = pem(acme.birth(d3.id, pubkey(d3)))
    good, out = refused(lambda: env.enroll(d3, b3, csr=d3.csr(cn=d4.id)),
                        SC.PERMISSION_DENIED, "CSR names")
    tap.ok(good, "a CSR naming another device than the birth certificate: PERMISSION_DENIED",
           out)
    b4 = pem(acme.birth(d4.id, pubkey(d3)))  # d4's id, d3's key
    good, out = refused(lambda: env.enroll(d3, b4, csr=d4.csr()), SC.PERMISSION_DENIED,
                        "key")
    tap.ok(good, "a CSR key other than the birth certificate's: PERMISSION_DENIED", out)
    good, out = refused(lambda: env.hostile.call("Signer", "Issue", S.IssueRequest(
        csr=d4.csr(), product_line="widgiot", region="us-east-1",
        birth_certificate=b4.encode()), S.IssueResponse), SC.PERMISSION_DENIED, "key")
    tap.ok(good, "  and straight at the signer", out)
    tap.ok(expect_error(lambda: env.sdevice(d4.id), SC.NOT_FOUND) is not None,
           "  nothing registered")
    # Revoked, once the manufacturer's CRL is registered.
    d5 = Device(env.tmp, "acme-0005")
    c5 = acme.birth(d5.id, pubkey(d5))
    crl = write(os.path.join(env.tmp, "acme.crl"), acme.crl([c5.serial_number], 2))
    p = st.cli("ca", "manufacturer-crl", "acme-root-ca", crl)
    tap.eq(p.returncode, 0, "ca manufacturer-crl", show(p))
    good, out = refused(lambda: env.enroll(d5, pem(c5)), SC.PERMISSION_DENIED, "revoked")
    tap.ok(good, "a revoked birth certificate: PERMISSION_DENIED (authz)", out)
    good, out = refused(lambda: env.hostile.call("Signer", "Issue", S.IssueRequest(
        csr=d5.csr(), product_line="widgiot", region="us-east-1",
        birth_certificate=pem(c5).encode()), S.IssueResponse), SC.PERMISSION_DENIED,
        "revoked")
    tap.ok(good, "  and by the signer", out)
    older = write(os.path.join(env.tmp, "acme-1.crl"), acme.crl([], 1))
    p = st.cli("ca", "manufacturer-crl", "acme-root-ca", older)
    tap.eq(p.returncode, 8, "an older CRL: exit 8", show(p))
    wrong = write(os.path.join(env.tmp, "other.crl"), other.crl([], 9))
    p = st.cli("ca", "manufacturer-crl", "acme-root-ca", wrong)
    tap.eq(p.returncode, 5, "another CA's CRL: exit 5", show(p))
    # A good one of the same manufacturer still enrolls.
    d6 = Device(env.tmp, "acme-0006")
    r = env.enroll(d6, pem(acme.birth(d6.id, pubkey(d6))))
    tap.ok(r.serial != "", "a birth certificate not on the CRL enrolls", r.serial)


def cli(env, acme, other):
    st = env.st
    p = st.cli("ca", "manufacturers", "--json")
    j = json.loads(p.stdout) if p.returncode == 0 else []
    tap.eq([(m["name"], m["product_line"], m["crl_number"]) for m in j],
           [("acme-root-ca", "widgiot", 2), ("zeta-root-ca", "gadget", 0)],
           "ca manufacturers --json", show(p))
    p = st.cli("ca", "manufacturers", "--product-line", "gadget", "--json")
    j = json.loads(p.stdout) if p.returncode == 0 else []
    tap.eq([m["name"] for m in j], ["zeta-root-ca"], "  --product-line gadget", show(p))
    p = st.cli("ca", "manufacturers")
    tap.ok(p.returncode == 0 and "acme-root-ca" in p.stdout and "NAME" in p.stdout,
           "ca manufacturers (table)", show(p))
    leaf = write(os.path.join(env.tmp, "leaf.pem"),
                 open(os.path.join(env.tmp, "acme-0001.birth.pem")).read())
    p = st.cli("ca", "register-manufacturer", leaf, "--product-line", "widgiot")
    tap.ok(p.returncode == 5 and "CA" in p.stderr, "a device certificate is no CA: exit 5",
           show(p))
    keyfile = write(os.path.join(env.tmp, "withkey.pem"), other.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode() + other.pem)
    p = st.cli("ca", "register-manufacturer", keyfile, "--product-line", "widgiot")
    tap.ok(p.returncode == 5 and "private key" in p.stderr, "a file with a key: exit 5",
           show(p))
    of = write(os.path.join(env.tmp, "other.pem"), other.pem)
    p = st.cli("ca", "register-manufacturer", of, "--product-line", "nosuchline")
    tap.eq(p.returncode, 8, "an unknown product line: exit 8", show(p))
    p = st.cli("ca", "register-manufacturer", of, "--product-line", "widgiot",
               "--name", "acme-root-ca")
    tap.eq(p.returncode, 8, "a name taken by another CA: exit 8", show(p))
    p = st.cli("ca", "register-manufacturer", of)
    tap.eq(p.returncode, 2, "without --product-line: usage error", show(p))
    for args in (("ca", "register-manufacturer"), ("ca", "manufacturers"),
                 ("ca", "manufacturer-crl"), ("device", "allow-birth")):
        p = st.cli(*args, "--help")
        tap.ok(p.returncode == 0 and "Usage: secretfree " + " ".join(args) in p.stdout
               and "Example:" in p.stdout, "%s --help" % " ".join(args), show(p))


def main():
    td = TempDir("sf-jitp-")
    env = None
    try:
        env = Env(td.path)
        acme, other = Mfr("Acme Root CA"), Mfr("Other Root CA")
        d, birth, r1 = first_contact(env, acme, other)
        reuse(env, acme, d, birth, r1)
        est_doors(env, acme, other)
        refusals(env, acme, other)
        cli(env, acme, other)
    except Exception as e:  # noqa: BLE001
        import traceback
        tap.ok(False, "test raised %r" % e, traceback.format_exc())
    finally:
        if env is not None:
            env.st.stop()
        td.cleanup()
    return tap.done()


if __name__ == "__main__":
    sys.exit(main())
