#!/usr/bin/python3
"""The signer is the source of truth for device state (real signer, authz
and CLI; the test runs as the signer's uid and so reaches its issuance
socket as a compromised authz would):

- a device disabled with the CLI is refused by Signer.Issue when its
  captured CSR is replayed straight to the signer (PERMISSION_DENIED), and
  by authz;
- replaying an enrolled device's CSR with fresh enrollment ids gets no
  more than the cap of live certificates (FAILED_PRECONDITION beyond); a
  renewal naming its current certificate passes the cap, one naming
  another device's, a revoked, an unknown or a malformed serial is refused;
- `device revoke` revokes every live certificate at the signer and in
  authz, and the device for good (refused by both, cannot be enabled);
  with --keep-device the device enrolls again;
- `device show` has the signer's view beside authz's."""
import json
import os
import sqlite3
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import grpc  # noqa: E402
import tap  # noqa: E402
from sfharness import Device, Stack, TempDir, expect_error, protos, show  # noqa: E402

pb = protos()
C, A, R, S = pb.common, pb.ca_admin, pb.registry, pb.signer
SC = grpc.StatusCode


def jload(p):
    try:
        return json.loads(p.stdout)
    except ValueError:
        return None


class Hostile:
    """A compromised authz: Signer.Issue straight on the issuance socket."""

    def __init__(self, st):
        self.cl = st.signer.issuance_client()
        self.n = 0

    def issue(self, csr, replaces=""):
        self.n += 1
        return self.cl.call("Signer", "Issue", S.IssueRequest(
            csr=csr, product_line="widgiot", region="us-east-1", requester="hostile",
            enrollment_id="enr-hostile-%d" % self.n, replaces_serial=replaces),
            S.IssueResponse)

    def refused(self, csr, code, replaces=""):
        return expect_error(lambda: self.issue(csr, replaces), code)


def signer_device(st, device_id):
    return st.sadmin.call("CaAdmin", "GetDeviceKey", A.GetDeviceKeyRequest(device_id=device_id),
                          C.DeviceKeyInfo)


def authz_device(st, device_id):
    return st.aadmin.call("Registry", "GetDevice", R.GetDeviceRequest(device_id=device_id),
                          R.Device)


def authz_certs(st, device_id):
    r = st.aadmin.call("Registry", "ListCertificates",
                       R.ListDeviceCertificatesRequest(device_id=device_id),
                       R.ListDeviceCertificatesResponse)
    return {c.serial: c for c in r.certificates}


def live_in_journal(st, device_id):
    db = sqlite3.connect("file:%s?mode=ro" % st.signer.journal, uri=True)
    try:
        return db.execute("SELECT count(*) FROM certs WHERE device_id = ? AND status IN (1, 2)"
                          " AND not_after > strftime('%s', 'now')", (device_id,)).fetchone()[0]
    finally:
        db.close()


def test_disabled(st, cli, hostile, a):
    csr = a.csr()
    st.device.call("Provisioning", "Enroll", pb.provisioning.EnrollRequest(csr=csr),
                   pb.provisioning.EnrollResponse)
    p = cli("device", "disable", a.id, "--reason", "reported stolen")
    tap.ok(p.returncode == 0 and p.stdout.strip() == "device %s: disabled" % a.id,
           "device disable with the CLI", show(p))
    tap.eq(signer_device(st, a.id).state, C.DEVICE_STATE_DISABLED, "the signer has it disabled")
    tap.eq(authz_device(st, a.id).state, C.DEVICE_STATE_DISABLED, "and authz follows")
    e = hostile.refused(csr, SC.PERMISSION_DENIED)
    tap.ok(e is not None and "disabled" in e.details,
           "its captured CSR straight to Signer.Issue: PERMISSION_DENIED", e)
    e = expect_error(lambda: st.enroll(a, key="after-disable"), SC.PERMISSION_DENIED)
    tap.ok(e is not None, "and through authz: PERMISSION_DENIED", e)
    tap.eq(live_in_journal(st, a.id), 1, "no certificate came of it")
    p = cli("--json", "device", "enable", a.id)
    j = jload(p)
    tap.ok(p.returncode == 0 and j and j["state"] == "active" and j["signer_state"] == "active",
           "device enable --json: authz's state and the signer's", show(p))
    tap.ok(hostile.issue(a.csr()).serial != "", "enabled again: the signer issues")


def test_cap(st, cli, hostile, a, b, c):
    e0 = st.enroll(b)
    csr = b.csr()
    results = []
    for _ in range(3):
        try:
            results.append(hostile.issue(csr).serial)
        except Exception as e:  # noqa: BLE001
            results.append(e)
    tap.ok(isinstance(results[0], str), "B's CSR replayed with a fresh enrollment id: issued"
           " (the cap is 2: the current certificate and one more)", results[0])
    tap.ok(all(getattr(r, "code", None) == SC.FAILED_PRECONDITION for r in results[1:]),
           "the second and the third replay: FAILED_PRECONDITION", results)
    tap.ok("live certificates" in getattr(results[2], "details", ""),
           "  saying the device holds its cap of live certificates", results[2])
    tap.eq(live_in_journal(st, b.id), 2, "the journal holds two live certificates for B")

    r = hostile.issue(csr, replaces=e0.serial)
    tap.ok(r.serial not in (e0.serial, results[0]),
           "a renewal naming B's current certificate passes the cap")
    tap.eq(live_in_journal(st, b.id), 3, "  three live certificates now")
    e = hostile.refused(csr, SC.FAILED_PRECONDITION, replaces=e0.serial)
    tap.ok(e is not None, "a second renewal of the same certificate does not", e)
    other = st.enroll(c)
    e = hostile.refused(csr, SC.PERMISSION_DENIED, replaces=other.serial)
    tap.ok(e is not None and "not a certificate of device" in e.details,
           "a renewal naming another device's certificate: PERMISSION_DENIED", e)
    p = cli("cert", "revoke", results[0], "--reason", "superseded")
    tap.ok(p.returncode == 0, "revoke B's replayed certificate", show(p))
    e = hostile.refused(csr, SC.FAILED_PRECONDITION, replaces=results[0])
    tap.ok(e is not None and "revoked" in e.details,
           "a renewal naming a revoked certificate: FAILED_PRECONDITION", e)
    e = hostile.refused(csr, SC.NOT_FOUND, replaces="00AB")
    tap.ok(e is not None, "a renewal naming an unknown serial: NOT_FOUND", e)
    e = hostile.refused(csr, SC.INVALID_ARGUMENT, replaces="not-a-serial")
    tap.ok(e is not None, "a renewal naming garbage: INVALID_ARGUMENT", e)
    e = expect_error(lambda: hostile.cl.call("Signer", "Issue", S.IssueRequest(
        csr=csr, product_line="widgiot", region="us-east-1", requester="x\ny"), S.IssueResponse),
        SC.INVALID_ARGUMENT)
    tap.ok(e is not None, "a requester with a newline: INVALID_ARGUMENT", e)
    e = expect_error(lambda: hostile.cl.call("Signer", "Issue", S.IssueRequest(
        csr=csr, product_line="widgiot", region="us-east-1", enrollment_id="e" * 65),
        S.IssueResponse), SC.INVALID_ARGUMENT)
    tap.ok(e is not None, "an enrollment id of 65 characters: INVALID_ARGUMENT", e)
    # An enrollment id the journal has for another device.
    e = expect_error(lambda: hostile.cl.call("Signer", "Issue", S.IssueRequest(
        csr=a.csr(), product_line="widgiot", region="us-east-1",
        enrollment_id=other.enrollment_id), S.IssueResponse), SC.PERMISSION_DENIED)
    tap.ok(e is not None, "another device's enrollment id: PERMISSION_DENIED", e)
    rp = hostile.cl.call("Signer", "Issue", S.IssueRequest(
        csr=c.csr(), product_line="widgiot", region="us-east-1",
        enrollment_id=other.enrollment_id), S.IssueResponse)
    tap.ok(rp.replayed and rp.serial == other.serial,
           "its own enrollment id again: the same certificate, replayed")


def test_revoke(st, cli, d, k):
    first = st.enroll(d, key="d-1")
    second = Hostile(st).issue(d.csr())
    p = cli("device", "revoke", d.id, "--reason", "key-compromise")
    tap.ok(p.returncode == 0 and first.serial in p.stdout and second.serial in p.stdout
           and "device %s: revoked, 2 certificates revoked" % d.id in p.stdout,
           "device revoke: both live certificates listed, the device revoked", show(p))
    for serial in (first.serial, second.serial):
        s = st.sadmin.call("CaAdmin", "GetCertificate", A.GetCertificateRequest(serial=serial),
                           C.CertificateInfo)
        tap.ok(s.status == C.CERTIFICATE_STATUS_REVOKED and
               s.revocation_reason == C.REVOCATION_REASON_KEY_COMPROMISE,
               "the signer: %s revoked for keyCompromise" % serial)
    ac = authz_certs(st, d.id)
    tap.ok(ac[first.serial].status == C.CERTIFICATE_STATUS_REVOKED,
           "authz mirrors the enrolled certificate's revocation")
    tap.eq(signer_device(st, d.id).state, C.DEVICE_STATE_REVOKED, "the signer: device revoked")
    tap.eq(authz_device(st, d.id).state, C.DEVICE_STATE_REVOKED, "authz: device revoked")
    e = expect_error(lambda: st.enroll(d, key="d-2"), SC.PERMISSION_DENIED)
    tap.ok(e is not None and "revoked" in e.details, "a later enrollment: refused by authz", e)
    e = Hostile(st).refused(d.csr(), SC.PERMISSION_DENIED)
    tap.ok(e is not None and "revoked" in e.details, "and by the signer", e)
    p = cli("device", "enable", d.id)
    tap.ok(p.returncode == 8 and "revoked" in p.stderr, "device enable of a revoked device: exit 8",
           show(p))
    p = cli("--json", "device", "revoke", d.id)
    j = jload(p)
    tap.ok(p.returncode == 0 and j and j["revoked"] == [] and j["state"] == "revoked",
           "revoking it again: nothing more revoked (--json)", show(p))

    kept = st.enroll(k)
    p = cli("device", "revoke", k.id, "--keep-device", "--reason", "superseded")
    tap.ok(p.returncode == 0 and "it may enroll again" in p.stdout,
           "device revoke --keep-device", show(p))
    tap.eq(signer_device(st, k.id).state, C.DEVICE_STATE_ACTIVE, "the signer: the device stays")
    tap.eq(authz_certs(st, k.id)[kept.serial].status, C.CERTIFICATE_STATUS_REVOKED,
           "authz: its certificate revoked")
    again = st.enroll(k, key="k-again")
    tap.ok(again.serial != kept.serial, "the device enrolls again")
    p = cli("device", "revoke", "no-such-device")
    tap.ok(p.returncode == 3, "an unknown device: exit 3", show(p))
    p = cli("device", "revoke", k.id, "--reason", "certificate-hold")
    tap.ok(p.returncode == 2, "a reason we do not offer: exit 2", show(p))


def test_show(st, cli, b):
    p = cli("device", "show", b.id)
    tap.ok(p.returncode == 0 and "signer state:     active" in p.stdout and
           "live certs:       2" in p.stdout, "device show: the signer's state and live certificates",
           show(p))
    p = cli("--json", "device", "show", b.id)
    j = jload(p)
    tap.ok(p.returncode == 0 and j and j["signer"]["state"] == "active" and
           j["signer"]["live_certificates"] == 2 and j["device"]["state"] == "active",
           "device show --json: signer beside device", show(p))


def test_help(cli):
    bad = []
    for s in (("device", "disable"), ("device", "enable"), ("device", "revoke"),
              ("device", "show"), ("audit", "reconcile")):
        p = cli(*s, "--help")
        if p.returncode != 0 or "Usage: secretfree " + " ".join(s) not in p.stdout or \
                "Example" not in p.stdout or "Exit status" not in p.stdout and s[1] != "show":
            bad.append((s, p.returncode, p.stdout[:200]))
    tap.ok(not bad, "--help: usage, exit status and an example", bad)


def main():
    td = TempDir("sf-devstate-")
    st = None
    try:
        st = Stack(td.path, regions=("us-east-1",))
        cli = st.cli
        a, b, c, d, k = (Device(td.path, i) for i in ("3001", "3002", "3003", "3004", "3005"))
        st.register([a, b, c, d, k])
        hostile = Hostile(st)
        test_disabled(st, cli, hostile, a)
        test_cap(st, cli, hostile, a, b, c)
        test_show(st, cli, b)
        test_revoke(st, cli, d, k)
        test_help(cli)
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
