#!/usr/bin/python3
"""Orphans and reconciliation, with the real signer, authz and CLI.

An orphan is a certificate the signer issued and journaled that authz
never recorded. Two real ways to make one during an enrollment with an
idempotency key:
- the registry fails after issuance: another process holds the registry's
  write lock (BEGIN EXCLUSIVE) longer than authz's busy timeout;
- the signer is too slow: it is stopped (SIGSTOP) inside Signer.Issue past
  authz's deadline (signer_timeout_ms) and then continued.
Either way the device gets an error, the journal has the certificate, and
the retry with the same key gets that same certificate: the journal still
holds one certificate for the enrollment id.

Then `secretfree audit reconcile`: every kind of disagreement is made for
real (a device disabled and one revoked, and a certificate revoked, while
authz is down; an orphan nobody retries; a device and a certificate only
one side knows), --dry-run lists them and changes nothing, the run fixes
what the signer is right about, and after the manual fixes a last run
reports agreement."""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import grpc  # noqa: E402
import tap  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402
from sfharness import Device, Stack, TempDir, expect_error, protos, show  # noqa: E402

pb = protos()
C, A, R, S, P = pb.common, pb.ca_admin, pb.registry, pb.signer, pb.provisioning
SC = grpc.StatusCode

# authz's registry waits this long for a lock (authz/registry.c).
REGISTRY_BUSY_S = 10
# authz's deadline for the signer in this test.
SIGNER_TIMEOUT_MS = 3000

LOCKER = r"""
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()
db.execute("ROLLBACK")
"""


def journal(st, sql, args=()):
    db = sqlite3.connect("file:%s?mode=ro" % st.signer.journal, uri=True)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def certs_of(st, device_id):
    """The journal's certificates of a device: (serial, enrollment_id)."""
    return journal(st, "SELECT serial, enrollment_id FROM certs WHERE device_id = ?"
                   " ORDER BY issued_at", (device_id,))


def wait_for(fn, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.1)
    return fn()


def check_retry(st, dev, key, what):
    """The journal's one certificate of dev is what the retry with key gets."""
    rows = wait_for(lambda: certs_of(st, dev.id))
    tap.eq(len(rows), 1, "%s: the signer's journal has the certificate" % what)
    r = st.enroll(dev, key=key)
    tap.ok(rows and r.serial == rows[0][0] and r.replayed,
           "%s: the retry with the same key gets that certificate (%s)" % (what, r.serial),
           (rows, r.serial, r.replayed))
    eid = rows[0][1] if rows else ""
    tap.ok(eid.startswith("enr-") and len(journal(
        st, "SELECT 1 FROM certs WHERE enrollment_id = ?", (eid,))) == 1,
        "%s: the journal holds exactly one certificate for enrollment %s" % (what, eid))
    tap.eq(r.enrollment_id, eid, "%s: authz recorded it under the signer's enrollment id" % what)
    again = st.enroll(dev, key=key)
    tap.ok(again.serial == r.serial and again.replayed, "%s: and authz has it on record now" % what)


def hold_lock(path):
    """Another process holding path's write lock until its stdin closes."""
    locker = subprocess.Popen([sys.executable, "-c", LOCKER, path],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    ok = locker.stdout.readline().strip() == "locked"
    return locker, ok


def release(locker):
    locker.stdin.close()
    locker.wait(timeout=30)


def test_registry_locked(st, dev):
    locker, ok = hold_lock(st.authz.registry)
    tap.ok(ok, "another process holds the registry's write lock")
    t0 = time.time()
    e = None
    try:
        st.device.call("Provisioning", "Enroll", P.EnrollRequest(
            csr=dev.csr(), idempotency_key="boot-locked"), P.EnrollResponse, timeout=60)
    except Exception as ex:  # noqa: BLE001
        e = ex
    finally:
        release(locker)
    tap.ok(e is not None and e.code == SC.UNAVAILABLE and "same idempotency key" in e.details,
           "the device gets UNAVAILABLE, told to retry with the same key (after %.0f s)"
           % (time.time() - t0), e)
    tap.ok(time.time() - t0 >= REGISTRY_BUSY_S - 1, "authz waited its busy timeout first")
    check_retry(st, dev, "boot-locked", "registry locked")


def test_signer_stopped(st, dev):
    """The signer is stopped inside Signer.Issue: its journal's write lock
    is held elsewhere for a moment, so that the certificate is signed and
    waiting for its commit when SIGSTOP comes; the lock is let go, and the
    signer stays stopped past authz's deadline."""
    result = {}

    def enroll():
        try:
            result["ok"] = st.device.call("Provisioning", "Enroll", P.EnrollRequest(
                csr=dev.csr(), idempotency_key="boot-stopped"), P.EnrollResponse, timeout=30)
        except Exception as ex:  # noqa: BLE001
            result["err"] = ex
    locker, ok = hold_lock(st.signer.journal)
    tap.ok(ok, "another process holds the journal's write lock")
    t = threading.Thread(target=enroll)
    try:
        t.start()
        time.sleep(SIGNER_TIMEOUT_MS / 2000.0)
        st.signer.signal(signal.SIGSTOP)
        release(locker)
        t.join(20)
    finally:
        st.signer.signal(signal.SIGCONT)
    e = result.get("err")
    tap.ok(e is not None and e.code == SC.UNAVAILABLE and "in time" in e.details,
           "signer stopped past authz's deadline: the device gets UNAVAILABLE", result)
    check_retry(st, dev, "boot-stopped", "signer stopped")


def cli_json(p):
    try:
        return json.loads(p.stdout)
    except ValueError:
        return None


def test_reconcile(st, cli, devs):
    r1, r2, r3, r4, r5, r6 = devs
    e1, e2, e3 = st.enroll(r1), st.enroll(r2), st.enroll(r3)
    p = cli("audit", "reconcile")
    tap.ok(p.returncode == 0 and "agree" in p.stdout, "at first the two agree", show(p))

    # authz down: each change holds at the signer only (exit 10).
    st.authz.stop()
    p = cli("device", "disable", r1.id)
    tap.eq(p.returncode, 10, "device disable with authz down: exit 10")
    p = cli("device", "revoke", r2.id, "--reason", "key-compromise")
    tap.eq(p.returncode, 10, "device revoke with authz down: exit 10")
    p = cli("cert", "revoke", e3.serial, "--reason", "superseded")
    tap.eq(p.returncode, 10, "cert revoke with authz down: exit 10")
    st.authz.start()

    # Orphans nobody retries: issued straight by the signer for devices
    # authz knows (one of them revoked since, at the signer only).
    iss = st.signer.issuance_client()
    o4 = iss.call("Signer", "Issue", S.IssueRequest(
        csr=r4.csr(), product_line="widgiot", region="us-east-1", enrollment_id="enr-orphan-4"),
        S.IssueResponse)
    o5 = iss.call("Signer", "Issue", S.IssueRequest(
        csr=r5.csr(), product_line="widgiot", region="us-east-1", enrollment_id="enr-orphan-5"),
        S.IssueResponse)
    st.sadmin.call("CaAdmin", "RevokeCertificate", A.RevokeCertificateRequest(
        serial=o5.serial, reason=C.REVOCATION_REASON_CESSATION_OF_OPERATION), C.CertificateInfo)
    # A device only the signer knows (the import into authz failed).
    st.sadmin.call("CaAdmin", "RegisterDeviceKeys", A.RegisterDeviceKeysRequest(records=[
        C.DeviceKeyRecord(device_id=r6.id, spki_der=r6.spki_der(), product_line="widgiot")]),
        C.ImportResult)
    # A certificate only authz knows: written into its registry behind its back.
    forged = "7F" + "00" * 15
    reg = sqlite3.connect(st.authz.registry, timeout=10)
    reg.execute("INSERT INTO enrollments (enrollment_id, device_id, csr_sha256, serial, ca_name,"
                " certificate_pem, chain_pem, not_before, not_after, created_at, state)"
                " VALUES ('enr-forged', ?, zeroblob(32), ?, 'us-east-1.widgiot', 'x', 'x',"
                " 0, 0, 0, 1)", (r4.id, forged))
    reg.execute("INSERT INTO certificates (serial, device_id, ca_name, enrollment_id, status,"
                " not_before, not_after, issued_at) VALUES (?, ?, 'us-east-1.widgiot',"
                " 'enr-forged', 1, 0, 0, 0)", (forged, r4.id))
    reg.commit()
    reg.close()

    def authz_view():
        ds = {d.device_id: d.state for d in st.aadmin.call(
            "Registry", "ListDevices", R.ListDevicesRequest(), R.ListDevicesResponse).devices}
        cs = {c.serial: c.status for c in st.aadmin.call(
            "Registry", "ListCertificates", R.ListDeviceCertificatesRequest(),
            R.ListDeviceCertificatesResponse).certificates}
        return ds, cs

    before = authz_view()
    p = cli("audit", "reconcile", "--dry-run")
    want = ["device-state %s: signer disabled, authz active" % r1.id,
            "device-state %s: signer revoked, authz active" % r2.id,
            "certificate-status %s (device %s): signer revoked (key-compromise), authz active"
            % (e2.serial, r2.id),
            "certificate-status %s (device %s): signer revoked (superseded), authz active"
            % (e3.serial, r3.id),
            "orphan %s (device %s): signer active, authz none" % (o4.serial, r4.id),
            "orphan %s (device %s): signer revoked (cessation-of-operation), authz none"
            % (o5.serial, r5.id),
            "device-unknown-to-authz %s" % r6.id,
            "certificate-unknown-to-signer %s (device %s)" % (forged, r4.id)]
    missing = [w for w in want if w not in p.stdout]
    tap.ok(p.returncode == 10 and not missing, "--dry-run lists each disagreement by kind, exit 10",
           (missing, show(p)))
    tap.ok("8 disagreements" in p.stdout and "0 fixed, 8 remaining" in p.stdout,
           "  and counts them", show(p))
    tap.ok(authz_view() == before, "--dry-run changes nothing in authz")

    p = cli("--json", "audit", "reconcile", "--dry-run")
    j = cli_json(p)
    tap.ok(p.returncode == 10 and j and j["dry_run"] and j["counts"]["orphan"] == 2 and
           j["counts"]["device-state"] == 2 and j["counts"]["certificate-status"] == 2 and
           len(j["disagreements"]) == 8 and not j["agree"],
           "--json: the disagreements and counts by kind", show(p))

    p = cli("audit", "reconcile")
    tap.ok(p.returncode == 10 and "6 fixed, 2 remaining" in p.stdout,
           "reconcile fixes six; the two only a person can settle remain (exit 10)", show(p))
    ds, cs = authz_view()
    tap.eq(ds.get(r1.id), C.DEVICE_STATE_DISABLED, "authz: %s disabled as the signer has it" % r1.id)
    tap.eq(ds.get(r2.id), C.DEVICE_STATE_REVOKED, "authz: %s revoked" % r2.id)
    tap.eq(cs.get(e2.serial), C.CERTIFICATE_STATUS_REVOKED, "authz: %s's certificate revoked" % r2.id)
    tap.eq(cs.get(e3.serial), C.CERTIFICATE_STATUS_REVOKED, "authz: %s's certificate revoked" % r3.id)
    tap.eq(cs.get(o4.serial), C.CERTIFICATE_STATUS_ACTIVE, "authz: orphan %s adopted" % o4.serial)
    tap.eq(cs.get(o5.serial), C.CERTIFICATE_STATUS_REVOKED,
           "authz: the revoked orphan adopted as revoked")
    d4 = st.aadmin.call("Registry", "GetDevice", R.GetDeviceRequest(device_id=r4.id), R.Device)
    tap.ok(d4.current_serial == o4.serial and d4.state == C.DEVICE_STATE_ACTIVE,
           "the device that held nothing holds its adopted certificate")
    d5 = st.aadmin.call("Registry", "GetDevice", R.GetDeviceRequest(device_id=r5.id), R.Device)
    tap.eq(d5.current_serial, "", "a revoked orphan is held by no device")
    f = st.device.call("Provisioning", "FetchCertificate", P.FetchCertificateRequest(
        enrollment_id="enr-orphan-4"), P.FetchCertificateResponse)
    tap.ok(f.data.decode() == o4.certificate_pem + o4.chain_pem,
           "the adopted enrollment serves the certificate and its chain")
    e = expect_error(lambda: st.enroll(r2, key="after-reconcile"), SC.PERMISSION_DENIED)
    tap.ok(e is not None, "authz now refuses the revoked device itself", e)

    # What only a person can settle: import the device, drop the forgery.
    st.aadmin.call("Registry", "ImportDevices", R.ImportDevicesRequest(records=[
        C.DeviceKeyRecord(device_id=r6.id, spki_der=r6.spki_der(), product_line="widgiot")]),
        C.ImportResult)
    reg = sqlite3.connect(st.authz.registry, timeout=10)
    reg.execute("DELETE FROM certificates WHERE serial = ?", (forged,))
    reg.execute("DELETE FROM enrollments WHERE enrollment_id = 'enr-forged'")
    reg.commit()
    reg.close()
    p = cli("audit", "reconcile")
    tap.ok(p.returncode == 0 and "the signer and authz agree" in p.stdout,
           "a last run reports agreement, exit 0", show(p))
    p = cli("--json", "audit", "reconcile")
    j = cli_json(p)
    tap.ok(p.returncode == 0 and j and j["agree"] and j["disagreements"] == [],
           "--json: agree", show(p))


def test_reconcile_pages(st, cli, n=600, orphans=520):
    """More devices and certificates than one page (500) on each side."""
    keys = {"p%04d" % i: ec.generate_private_key(ec.SECP256R1()) for i in range(n)}
    recs = [C.DeviceKeyRecord(device_id=d, spki_der=k.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
        product_line="widgiot") for d, k in keys.items()]
    st.sadmin.call("CaAdmin", "RegisterDeviceKeys", A.RegisterDeviceKeysRequest(records=recs),
                   C.ImportResult)
    st.aadmin.call("Registry", "ImportDevices", R.ImportDevicesRequest(records=recs),
                   C.ImportResult)
    iss = st.signer.issuance_client()
    for d in sorted(keys)[:orphans]:
        csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(
            [x509.NameAttribute(NameOID.COMMON_NAME, d)])).sign(keys[d], hashes.SHA256())
        iss.call("Signer", "Issue", S.IssueRequest(
            csr=csr.public_bytes(serialization.Encoding.DER), product_line="widgiot",
            region="us-east-1"), S.IssueResponse)
    last = "p%04d" % (n - 1)
    st.sadmin.call("CaAdmin", "DisableDevice", A.SetDeviceKeyStateRequest(device_id=last),
                   C.DeviceKeyInfo)
    p = cli("audit", "reconcile")
    tap.ok(p.returncode == 0 and "device-state 1, orphan %d" % orphans in p.stdout and
           "%d fixed, 0 remaining" % (orphans + 1) in p.stdout and
           "device-state %s: signer disabled" % last in p.stdout,
           "%d orphans and a device on the second page: all found and fixed" % orphans,
           show(p)[-2000:])
    p = cli("audit", "reconcile")
    tap.ok(p.returncode == 0 and "the signer and authz agree" in p.stdout,
           "then the two agree", show(p))


def main():
    td = TempDir("sf-orphans-")
    st = None
    try:
        # A short deadline for the signer, so that stopping it makes an
        # orphan quickly.
        st = Stack(td.path, regions=("us-east-1",),
                   authz_kw={"signer_timeout_ms": SIGNER_TIMEOUT_MS})
        devs = [Device(td.path, "4%03d" % i) for i in range(8)]
        st.register(devs[:7])
        test_registry_locked(st, devs[0])
        test_signer_stopped(st, devs[1])
        test_reconcile(st, st.cli, devs[2:])
        test_reconcile_pages(st, st.cli)
    except Exception as e:  # noqa: BLE001
        import traceback
        tap.ok(False, "test raised %r" % e, traceback.format_exc())
        if st:
            tap.diag(st.authz.log_text()[-3000:])
    finally:
        if st:
            if st.signer.proc:
                st.signer.signal(signal.SIGCONT)
            st.stop()
        td.cleanup()
    tap.done()


if __name__ == "__main__":
    main()
