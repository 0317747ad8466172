#!/usr/bin/python3
"""Renewal with acknowledgement (real signer, authz with client
certificates verified against the root, SoftHSM2, the CLI, openssl):

- renew with the same key over mutual TLS with the current certificate,
  and with current_serial and a CSR signed by the registered key: the new
  certificate is PENDING_ACK at the signer and in authz, the device keeps
  its current one; a second renewal while one is pending is refused;
  retries with the same idempotency key (or the same CSR) get the same
  renewal; an idempotency key of another enrollment is refused;
- acknowledge (key_signature over the enrollment id; no proof or a wrong
  signature refused): the new certificate ACTIVE and the device's, the old
  one SUPERSEDED (reason superseded, revoked at the acknowledgement) at the
  signer and in authz; the CRL lists it as superseded and openssl ocsp
  says revoked for it and good for the new one; acknowledging again is a
  no-op;
- implicit acknowledgement: the first Provisioning call over TLS with the
  pending certificate as client certificate acknowledges it;
- the no-ack rollback: past the deadline the pending certificate is
  revoked (cessationOfOperation, at its deadline) by the signer and by
  authz's sweep, the enrollment FAILED, the old certificate still ACTIVE,
  still the device's, still verifying with openssl verify -crl_check,
  and audit reconcile finds nothing to fix;
- key rotation: a new key without current_key_signature, or with a wrong
  one, refused by authz and, sent straight to Signer.Issue as a hostile
  authz would, by the signer; a new key of another device refused; with
  the right signature the registered key changes at the acknowledgement,
  at the signer and in authz, and the old key no longer enrolls;
- a renewal naming another device's certificate, or over TLS with
  another device's certificate, refused;
- GetRenewalInfo: the window from two thirds to five sixths of the
  validity, as EnrollResponse says; `device renew-early` pulls it forward
  with its note, never later;
- the CLI: enroll --renew over TLS with a new key and acknowledged,
  --no-ack then --ack, and its refusals."""
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import grpc  # noqa: E402
import tap  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa  # noqa: E402
from sfharness import (Client, Device, Stack, TempDir, expect_error,  # noqa: E402
                       openssl_verify, protos, run_bytes, show, split_pem)

pb = protos()
C, A, P, R, S = pb.common, pb.ca_admin, pb.provisioning, pb.registry, pb.signer
SC = grpc.StatusCode
ACK_TIMEOUT = 8
CA = "us-east-1.widgiot"


def sign(keyfile, data):
    """The device's signature as keysig.h defines it."""
    with open(keyfile, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), None)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(hashes.SHA256()))
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    return key.sign(data)


def write(path, text):
    with open(path, "w" if isinstance(text, str) else "wb") as f:
        f.write(text)
    return path


def wait_for(fn, timeout=30, step=0.25):
    deadline = time.time() + timeout
    got = fn()
    while not got and time.time() < deadline:
        time.sleep(step)
        got = fn()
    return got


def key_fp(keyfile):
    der = run_bytes(["openssl", "pkey", "-in", keyfile, "-pubout", "-outform", "DER"])
    return hashlib.sha256(der).digest()


class Env:
    def __init__(self, tmp):
        self.tmp = tmp
        self.st = Stack(tmp, regions=("us-east-1",), signer_kw={
            "limits_extra": "ack_timeout_seconds = %d\n" % ACK_TIMEOUT})
        # Client certificates verified up to the root; a quick sweep.
        self.root_file = write(os.path.join(tmp, "root.pem"), self.st.root_pem)
        self.st.authz.stop()
        self.st.authz.write_conf(authz_extra="tls_client_ca = %s\nrenewal_sweep_seconds = 1\n"
                                 % self.root_file)
        self.st.authz.start()
        self.hostile = self.st.signer.issuance_client()

    def tls(self, dev_key, cert_pem, chain_pem):
        """A device channel presenting cert_pem (+ chain) with dev_key."""
        with open(dev_key, "rb") as f:
            key = f.read()
        creds = grpc.ssl_channel_credentials(
            root_certificates=self.st.root_pem.encode(), private_key=key,
            certificate_chain=(cert_pem + chain_pem).encode())
        return Client(self.st.authz.device, creds)

    def renew(self, client=None, **kw):
        return (client or self.st.device).call("Provisioning", "Renew", P.RenewRequest(**kw),
                                               P.EnrollResponse)

    def ack(self, client=None, **kw):
        return (client or self.st.device).call("Provisioning", "Acknowledge",
                                               P.AcknowledgeRequest(**kw),
                                               P.AcknowledgeResponse)

    def info(self, serial, client=None):
        return (client or self.st.device).call("Provisioning", "GetRenewalInfo",
                                               P.RenewalInfoRequest(serial=serial),
                                               P.RenewalInfo)

    def scert(self, serial):
        return self.st.sadmin.call("CaAdmin", "GetCertificate",
                                   A.GetCertificateRequest(serial=serial), C.CertificateInfo)

    def acert(self, device_id, serial):
        r = self.st.aadmin.call("Registry", "ListCertificates",
                                R.ListDeviceCertificatesRequest(device_id=device_id),
                                R.ListDeviceCertificatesResponse)
        return {c.serial: c for c in r.certificates}.get(serial)

    def adevice(self, device_id):
        return self.st.aadmin.call("Registry", "GetDevice", R.GetDeviceRequest(
            device_id=device_id), R.Device)

    def sdevice(self, device_id):
        return self.st.sadmin.call("CaAdmin", "GetDeviceKey", A.GetDeviceKeyRequest(
            device_id=device_id), C.DeviceKeyInfo)

    def enrollment_state(self, eid):
        db = sqlite3.connect("file:%s?mode=ro" % self.st.authz.registry, uri=True)
        try:
            row = db.execute("SELECT state FROM enrollments WHERE enrollment_id = ?",
                             (eid,)).fetchone()
        finally:
            db.close()
        return row[0] if row else None

    def crl(self):
        r = self.st.sadmin.call("CaAdmin", "GetCrl", A.GetCrlAdminRequest(ca_name=CA),
                                A.GetCrlAdminResponse)
        return r

    def crl_entry(self, serial):
        """The CRL's entry for serial (its reason name, or "" without one),
        or None when the CRL does not list it."""
        c = x509.load_der_x509_crl(self.crl().crl_der)
        e = c.get_revoked_certificate_by_serial_number(int(serial, 16))
        if e is None:
            return None
        try:
            return e.extensions.get_extension_for_class(x509.CRLReason).value.reason.name
        except x509.ExtensionNotFound:
            return ""

    def verify_crl(self, cert_pem, chain_pem):
        crlf = write(os.path.join(self.tmp, "crl.pem"), self.crl().crl_pem)
        return openssl_verify(self.tmp, chain_pem, cert_pem, ["-crl_check", "-CRLfile", crlf])


def same_key_tls(env, d):
    """Renew over mTLS with the current certificate, acknowledge with the
    key's signature; the old one superseded everywhere."""
    st = env.st
    e0 = st.enroll(d)
    cl = env.tls(d.key, e0.certificate_pem, e0.chain_pem)
    r = env.renew(cl, csr=d.csr(), idempotency_key="renew-1")
    tap.eq(r.state, P.ENROLLMENT_STATE_PENDING_ACK, "renew over TLS: PENDING_ACK")
    tap.eq(r.replaces_serial, e0.serial, "  it replaces the TLS client certificate")
    now = time.time()
    tap.ok(now < r.ack_deadline <= now + ACK_TIMEOUT + 2,
           "  with the signer's acknowledgement deadline", r.ack_deadline)
    good, out = openssl_verify(env.tmp, r.chain_pem, r.certificate_pem)
    tap.ok(good, "  openssl verify accepts the new certificate", out)
    s_new, s_old = env.scert(r.serial), env.scert(e0.serial)
    tap.eq((s_new.status, s_new.ack_deadline, s_new.replaces_serial),
           (C.CERTIFICATE_STATUS_PENDING_ACK, r.ack_deadline, e0.serial),
           "  the signer journaled it PENDING_ACK with that deadline")
    tap.eq(s_old.status, C.CERTIFICATE_STATUS_ACTIVE, "  the old one is still ACTIVE there")
    a_new = env.acert(d.id, r.serial)
    tap.eq((a_new.status if a_new else None, a_new.ack_deadline if a_new else None),
           (C.CERTIFICATE_STATUS_PENDING_ACK, r.ack_deadline),
           "  authz recorded it PENDING_ACK with the deadline")
    tap.eq(env.adevice(d.id).current_serial, e0.serial, "  the device keeps its current one")

    again = env.renew(cl, csr=d.csr(), idempotency_key="renew-1")
    tap.eq((again.serial, again.enrollment_id, again.replayed),
           (r.serial, r.enrollment_id, True),
           "a retry with the same idempotency key: the same renewal, replayed")
    e = expect_error(lambda: env.renew(cl, csr=d.csr(), idempotency_key="renew-2"),
                     SC.FAILED_PRECONDITION)
    tap.ok(e is not None and "pending" in e.details,
           "a second renewal while one is pending: FAILED_PRECONDITION", e)

    e = expect_error(lambda: env.ack(enrollment_id=r.enrollment_id), SC.PERMISSION_DENIED)
    tap.ok(e is not None, "acknowledge without a proof: PERMISSION_DENIED", e)
    other = Device(env.tmp, d.id + "-other")
    e = expect_error(lambda: env.ack(enrollment_id=r.enrollment_id, key_signature=sign(
        other.key, r.enrollment_id.encode())), SC.PERMISSION_DENIED)
    tap.ok(e is not None, "acknowledge signed by another key: PERMISSION_DENIED", e)
    tap.eq(env.scert(r.serial).status, C.CERTIFICATE_STATUS_PENDING_ACK,
           "  still pending at the signer")

    a = env.ack(enrollment_id=r.enrollment_id, serial=r.serial,
                key_signature=sign(d.key, r.enrollment_id.encode()))
    tap.eq((a.state, a.superseded_serial), (P.ENROLLMENT_STATE_ACKNOWLEDGED, e0.serial),
           "acknowledged: the old certificate superseded")
    s_new, s_old = env.scert(r.serial), env.scert(e0.serial)
    tap.eq(s_new.status, C.CERTIFICATE_STATUS_ACTIVE, "  the signer: the new one ACTIVE")
    tap.eq((s_old.status, s_old.revocation_reason), (C.CERTIFICATE_STATUS_SUPERSEDED,
                                                     C.REVOCATION_REASON_SUPERSEDED),
           "  the signer: the old one SUPERSEDED, reason superseded")
    tap.ok(s_old.revoked_at > 0 and s_old.revoked_at == s_new.acknowledged_at,
           "  revoked at the acknowledgement", (s_old.revoked_at, s_new.acknowledged_at))
    a_new, a_old = env.acert(d.id, r.serial), env.acert(d.id, e0.serial)
    tap.eq((a_new.status, a_old.status, a_old.revocation_reason, a_old.revoked_at),
           (C.CERTIFICATE_STATUS_ACTIVE, C.CERTIFICATE_STATUS_SUPERSEDED,
            C.REVOCATION_REASON_SUPERSEDED, s_old.revoked_at),
           "  authz mirrors both, with the same reason and time")
    tap.eq(env.adevice(d.id).current_serial, r.serial, "  the new one is the device's current")
    tap.eq(env.enrollment_state(r.enrollment_id), P.ENROLLMENT_STATE_ACKNOWLEDGED,
           "  the enrollment ACKNOWLEDGED")
    a2 = env.ack(enrollment_id=r.enrollment_id, key_signature=sign(
        d.key, r.enrollment_id.encode()))
    tap.eq((a2.state, a2.superseded_serial), (a.state, a.superseded_serial),
           "acknowledging again: the same answer")
    tap.eq(env.scert(e0.serial).revoked_at, s_old.revoked_at, "  and nothing changes")

    tap.eq(wait_for(lambda: env.crl_entry(e0.serial)), "superseded",
           "the CRL lists the old certificate, reason superseded")
    tap.eq(env.crl_entry(r.serial), None, "  and not the new one")
    chain = split_pem(r.chain_pem)
    issuer = write(os.path.join(env.tmp, "issuer.pem"), chain[0])
    old = write(os.path.join(env.tmp, "old.pem"), e0.certificate_pem)
    new = write(os.path.join(env.tmp, "new.pem"), r.certificate_pem)
    url = st.authz.http + "/" + CA

    def ocsp(leaf):
        p = subprocess.run(["openssl", "ocsp", "-issuer", issuer, "-cert", leaf, "-url", url,
                            "-CAfile", env.root_file], capture_output=True, text=True)
        return p.stdout + p.stderr

    out = wait_for(lambda: (lambda o: o if "%s: revoked" % old in o else None)(ocsp(old)))
    tap.ok(out and "Reason: superseded" in out,
           "openssl ocsp: the old certificate revoked (superseded)", out or ocsp(old))
    out = ocsp(new)
    tap.ok("%s: good" % new in out, "openssl ocsp: the new one good", out)
    cl.close()
    return r


def serial_and_first_use(env, d):
    """Renew with current_serial (no client certificate); the pending
    certificate's first use over TLS acknowledges it."""
    e0 = env.st.enroll(d)
    csr = d.csr()
    r = env.renew(csr=csr, current_serial=e0.serial)
    tap.eq((r.state, r.replaces_serial), (P.ENROLLMENT_STATE_PENDING_ACK, e0.serial),
           "renew with current_serial and a CSR of the registered key: PENDING_ACK")
    again = env.renew(csr=csr, current_serial=e0.serial)
    tap.eq((again.serial, again.replayed), (r.serial, True),
           "  the same CSR again (no idempotency key): the same renewal")
    e = expect_error(lambda: env.renew(csr=d.csr()), SC.INVALID_ARGUMENT)
    tap.ok(e is not None and "current_serial" in e.details,
           "without current_serial or a client certificate: INVALID_ARGUMENT", e)
    e = expect_error(lambda: env.renew(csr=d.csr(), current_serial=e0.serial,
                                       idempotency_key="ik-enroll-%s" % d.id),
                     SC.INVALID_ARGUMENT)
    tap.ok(e is not None, "an idempotency key used by the first enrollment: INVALID_ARGUMENT", e)
    cl = env.tls(d.key, r.certificate_pem, r.chain_pem)
    info = env.info(r.serial, client=cl)
    tap.eq(info.serial, r.serial, "a call over TLS with the pending certificate")
    tap.eq(env.scert(r.serial).status, C.CERTIFICATE_STATUS_ACTIVE,
           "  acknowledged it: ACTIVE at the signer (its first use)")
    tap.eq(env.scert(e0.serial).status, C.CERTIFICATE_STATUS_SUPERSEDED,
           "  the old one superseded")
    tap.eq(env.adevice(d.id).current_serial, r.serial, "  and authz holds the new one")
    cl.close()


def rollback(env, d):
    """No acknowledgement: past the deadline the renewal is revoked and the
    old certificate stays."""
    st = env.st
    e0 = st.enroll(d)
    r = env.renew(csr=d.csr(), current_serial=e0.serial)
    tap.eq(r.state, P.ENROLLMENT_STATE_PENDING_ACK, "a renewal nobody acknowledges")
    time.sleep(max(0, r.ack_deadline - time.time()))
    got = wait_for(lambda: env.scert(r.serial).status == C.CERTIFICATE_STATUS_REVOKED)
    s_new = env.scert(r.serial)
    tap.ok(got, "past its deadline the signer revoked it", s_new)
    tap.eq((s_new.revocation_reason, s_new.revoked_at),
           (C.REVOCATION_REASON_CESSATION_OF_OPERATION, r.ack_deadline),
           "  for cessationOfOperation, at its deadline")
    tap.eq(env.scert(e0.serial).status, C.CERTIFICATE_STATUS_ACTIVE,
           "  the old one is still ACTIVE at the signer")
    got = wait_for(lambda: (env.acert(d.id, r.serial).status == C.CERTIFICATE_STATUS_REVOKED))
    a_new = env.acert(d.id, r.serial)
    tap.ok(got and a_new.revocation_reason == s_new.revocation_reason and
           a_new.revoked_at == s_new.revoked_at,
           "authz's sweep revoked it too, with the same reason and time", a_new)
    tap.eq(env.enrollment_state(r.enrollment_id), P.ENROLLMENT_STATE_FAILED,
           "  the enrollment FAILED")
    tap.eq(env.adevice(d.id).current_serial, e0.serial, "  the device keeps the old one")
    tap.eq(env.acert(d.id, e0.serial).status, C.CERTIFICATE_STATUS_ACTIVE,
           "  ACTIVE in authz")
    e = expect_error(lambda: env.ack(enrollment_id=r.enrollment_id, key_signature=sign(
        d.key, r.enrollment_id.encode())), SC.FAILED_PRECONDITION)
    tap.ok(e is not None, "acknowledging it now: FAILED_PRECONDITION", e)
    tap.ok(wait_for(lambda: env.crl_entry(r.serial) == "cessation_of_operation"),
           "the CRL lists the pending one (cessationOfOperation)")
    good, out = env.verify_crl(e0.certificate_pem, e0.chain_pem)
    tap.ok(good, "openssl verify -crl_check: the old certificate still verifies", out)
    good, out = env.verify_crl(r.certificate_pem, r.chain_pem)
    tap.ok(not good and "revoked" in out, "  the pending one does not: revoked", out)
    p = st.cli("audit", "reconcile", "--dry-run")
    tap.eq(p.returncode, 0, "audit reconcile: the signer and authz agree", show(p))
    r2 = env.renew(csr=d.csr(), current_serial=e0.serial)
    tap.eq(r2.state, P.ENROLLMENT_STATE_PENDING_ACK, "  and the device may renew again")


def key_rotation(env, d, other):
    """A new key: only with the current key's signature over the CSR."""
    st = env.st
    e0 = st.enroll(d)
    new = Device(env.tmp, d.id + "-next")
    csr = new.csr(cn=d.id, der=True)
    e = expect_error(lambda: env.renew(csr=csr, current_serial=e0.serial), SC.PERMISSION_DENIED)
    tap.ok(e is not None and "current_key_signature" in e.details,
           "a new key without current_key_signature: refused by authz", e)
    bad = sign(new.key, csr)
    e = expect_error(lambda: env.renew(csr=csr, current_serial=e0.serial,
                                       current_key_signature=bad), SC.PERMISSION_DENIED)
    tap.ok(e is not None, "  with a signature by the new key itself: refused by authz", e)

    def hostile(sig, eid):
        return expect_error(lambda: env.hostile.call("Signer", "Issue", S.IssueRequest(
            csr=csr, product_line="widgiot", region="us-east-1", requester="hostile",
            enrollment_id=eid, replaces_serial=e0.serial, current_key_signature=sig),
            S.IssueResponse), SC.PERMISSION_DENIED)
    e = hostile(b"", "enr-hostile-1")
    tap.ok(e is not None, "sent straight to Signer.Issue without a signature: refused by the"
           " signer", e)
    e = hostile(bad, "enr-hostile-2")
    tap.ok(e is not None, "  with a wrong signature: refused by the signer", e)
    tap.ok("key change refused" in st.signer.log_text(), "  and the signer logs it")

    stolen = other.csr(cn=d.id, der=True)
    e = expect_error(lambda: env.renew(csr=stolen, current_serial=e0.serial,
                                       current_key_signature=sign(d.key, stolen)),
                     SC.PERMISSION_DENIED)
    tap.ok(e is not None and other.id in e.details,
           "a new key registered to another device: refused", e)

    r = env.renew(csr=csr, current_serial=e0.serial, current_key_signature=sign(d.key, csr))
    tap.eq(r.state, P.ENROLLMENT_STATE_PENDING_ACK,
           "with the current key's signature over the CSR: PENDING_ACK")
    cert = x509.load_pem_x509_certificate(r.certificate_pem.encode())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    tap.eq(spki, new.spki_der(), "  the certificate carries the new key")
    tap.eq(env.sdevice(d.id).key_sha256, key_fp(d.key),
           "  the signer's registered key is still the old one")
    a = env.ack(enrollment_id=r.enrollment_id, key_signature=sign(
        new.key, r.enrollment_id.encode()))
    tap.eq(a.superseded_serial, e0.serial, "acknowledged with the new key")
    tap.eq(env.sdevice(d.id).key_sha256, key_fp(new.key),
           "  the new key is the device's registered key at the signer")
    tap.eq(env.adevice(d.id).key_sha256, key_fp(new.key), "  and in authz")
    e = expect_error(lambda: st.enroll(d), SC.PERMISSION_DENIED)
    tap.ok(e is not None, "the old key no longer enrolls", e)
    return new, r


def others_serial(env, d1, d2):
    """Naming another device's certificate."""
    e1, e2 = env.st.enroll(d1), env.st.enroll(d2)
    e = expect_error(lambda: env.renew(csr=d1.csr(), current_serial=e2.serial),
                     SC.PERMISSION_DENIED)
    tap.ok(e is not None, "a renewal naming another device's serial: PERMISSION_DENIED", e)
    cl = env.tls(d2.key, e2.certificate_pem, e2.chain_pem)
    e = expect_error(lambda: env.renew(cl, csr=d1.csr()), SC.PERMISSION_DENIED)
    tap.ok(e is not None, "  over TLS with another device's certificate: PERMISSION_DENIED", e)
    cl.close()
    e = expect_error(lambda: env.renew(csr=d1.csr(), current_serial="00AB"), SC.NOT_FOUND)
    tap.ok(e is not None, "  an unknown serial: NOT_FOUND", e)
    return e1, e2


def renewal_info(env, d, e):
    st = env.st
    info = env.info(e.serial)
    v = e.not_after - e.not_before
    tap.eq((info.window_start, info.window_end),
           (e.not_before + v // 3 * 2, e.not_before + v // 6 * 5),
           "GetRenewalInfo: from two thirds of the validity to five sixths")
    tap.eq((e.renew_after, e.renew_before), (info.window_start, info.window_end),
           "  as EnrollResponse said")
    p = st.cli("device", "renew-early", d.id, "--note", "incident 41")
    tap.ok(p.returncode == 0 and "renewal window of 1 certificates" in p.stdout,
           "device renew-early ID: one certificate", show(p))
    info2 = env.info(e.serial)
    now = time.time()
    tap.ok(info2.window_start <= now and info2.window_end == info2.window_start + 7 * 86400,
           "  the window opens now, for 7 days", info2)
    tap.eq(info2.explanation, "incident 41", "  with the note")
    later = int(now) + 30 * 86400
    p = st.cli("--json", "device", "renew-early", "--ca", CA, "--at", str(later),
               "--until", str(later + 86400), "--note", "rotation")
    doc = json.loads(p.stdout) if p.returncode == 0 else {}
    tap.ok(doc.get("certificates", 0) >= 2, "renew-early --ca: the CA's certificates", show(p))
    info3 = env.info(e.serial)
    tap.eq((info3.window_start, info3.window_end), (info2.window_start, info2.window_end),
           "  a window pulled forward is never pushed later")
    p = st.cli("device", "renew-early")
    tap.eq(p.returncode, 2, "renew-early with no devices: usage error", show(p))
    p = st.cli("device", "renew-early", d.id, "--at", "2030-01-02", "--until", "2030-01-01")
    tap.eq(p.returncode, 5, "  --until before --at: INVALID_ARGUMENT (exit 5)", show(p))
    e2 = expect_error(lambda: st.aadmin.call("Registry", "SetRenewalWindow",
                                             R.SetRenewalWindowRequest(),
                                             R.SetRenewalWindowResponse),
                      SC.INVALID_ARGUMENT)
    tap.ok(e2 is not None, "SetRenewalWindow without a selector: INVALID_ARGUMENT", e2)
    e2 = expect_error(lambda: env.info("ZZ"), SC.INVALID_ARGUMENT)
    tap.ok(e2 is not None, "GetRenewalInfo of garbage: INVALID_ARGUMENT", e2)
    e2 = expect_error(lambda: env.info("00AB"), SC.NOT_FOUND)
    tap.ok(e2 is not None, "GetRenewalInfo of an unknown serial: NOT_FOUND", e2)


def cli_renew(env, d):
    st = env.st
    tmp = env.tmp
    cert, chain = os.path.join(tmp, d.id + ".crt"), os.path.join(tmp, d.id + "-chain.pem")
    base = ["--endpoint", st.authz.device, "--ca-file", env.root_file]
    p = st.cli("enroll", "--id", d.id, "--key", d.key, "--out", cert, "--chain-out", chain,
               *base)
    tap.eq(p.returncode, 0, "the CLI enrolls %s" % d.id, show(p))
    old_serial = x509.load_pem_x509_certificate(open(cert, "rb").read()).serial_number
    nk = Device(tmp, d.id + "-k2")
    new_cert = os.path.join(tmp, d.id + "-2.crt")
    p = st.cli("--json", "enroll", "--renew", "--cert", cert, "--chain", chain, "--key", d.key,
               "--new-key", nk.key, "--out", new_cert, *base)
    doc = json.loads(p.stdout) if p.returncode == 0 else {}
    tap.ok(p.returncode == 0 and doc.get("proof") == "tls" and doc.get("new_key") is True,
           "enroll --renew --new-key: over TLS with the current certificate", show(p))
    tap.eq((doc.get("state"), doc.get("superseded_serial")),
           ("acknowledged", "%X" % old_serial if len("%X" % old_serial) % 2 == 0
            else "0%X" % old_serial), "  acknowledged: the old one superseded")
    tap.eq(env.sdevice(d.id).key_sha256, key_fp(nk.key), "  the new key registered")
    p = st.cli("enroll", "--renew", "--cert", new_cert, "--key", nk.key, "--no-ack",
               "--endpoint", st.authz.admin)
    eid = [l.split(":", 1)[1].strip() for l in p.stderr.splitlines()
           if l.startswith("enrollment id:")]
    tap.ok(p.returncode == 0 and eid and "enroll --ack" in p.stderr,
           "enroll --renew --no-ack on a unix: endpoint (proof by serial)", show(p))
    p2 = st.cli("enroll", "--ack", eid[0] if eid else "x", "--key", nk.key,
                "--endpoint", st.authz.admin)
    tap.ok(p2.returncode == 0 and "acknowledged" in p2.stdout, "enroll --ack", show(p2))
    p = st.cli("enroll", "--renew", "--cert", new_cert, "--key", d.key,
               "--endpoint", st.authz.admin)
    tap.eq(p.returncode, 4, "renewing with a key that is no longer the device's: exit 4",
           show(p))
    p = st.cli("enroll", "--renew", "--key", d.key, *base)
    tap.eq(p.returncode, 2, "--renew without --cert: usage error", show(p))
    p = st.cli("enroll", "--help")
    tap.ok("--renew" in p.stdout and "--ack ENROLLMENT_ID" in p.stdout,
           "enroll --help documents --renew and --ack", show(p))
    p = st.cli("device", "renew-early", "--help")
    tap.ok(p.returncode == 0 and "GetRenewalInfo" in p.stdout and "Example:" in p.stdout,
           "device renew-early --help", show(p))


def main():
    td = TempDir("sf-renew-")
    env = None
    try:
        env = Env(td.path)
        devs = [Device(td.path, "70%02d" % i) for i in range(1, 10)]
        env.st.register(devs)
        # 7009's first enrollment uses an idempotency key, reused below.
        env.st.enroll(devs[8], key="ik-enroll-7009")
        same_key_tls(env, devs[0])
        serial_and_first_use(env, devs[8])
        key_rotation(env, devs[2], devs[3])
        e1, _ = others_serial(env, devs[4], devs[5])
        renewal_info(env, devs[4], e1)
        cli_renew(env, devs[6])
        rollback(env, devs[1])
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
