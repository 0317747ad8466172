#!/usr/bin/python3
"""Revoking one certificate with the CLI against the real signer and authz:
the signer's journal has it (status, reason, time) before the CLI returns,
authz mirrors it (the certificate's status, the device's current
certificate released so that it can enroll again), a repeat with the same
reason changes nothing, another reason is refused, bad input gets its exit
code, and with authz down the revocation holds at the signer and the CLI
says to reconcile (exit 10)."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import tap  # noqa: E402
from sfharness import Device, Stack, TempDir, protos, show  # noqa: E402

pb = protos()
C, A, R = pb.common, pb.ca_admin, pb.registry


def signer_cert(st, serial):
    return st.sadmin.call("CaAdmin", "GetCertificate", A.GetCertificateRequest(serial=serial),
                          C.CertificateInfo)


def authz_cert(st, device_id, serial):
    r = st.aadmin.call("Registry", "ListCertificates",
                       R.ListDeviceCertificatesRequest(device_id=device_id),
                       R.ListDeviceCertificatesResponse)
    return next((c for c in r.certificates if c.serial == serial), None)


def device(st, device_id):
    return st.aadmin.call("Registry", "GetDevice", R.GetDeviceRequest(device_id=device_id),
                          R.Device)


def main():
    td = TempDir("sf-revoke-")
    st = None
    try:
        st = Stack(td.path, regions=("us-east-1",))
        cli = st.cli
        d1, d2 = Device(td.path, "1111"), Device(td.path, "1112")
        st.register([d1, d2])
        e1 = st.enroll(d1)
        e2 = st.enroll(d2)
        tap.eq(device(st, "1111").current_serial, e1.serial,
               "1111 holds its certificate")

        p = cli("cert", "revoke", e1.serial, "--reason", "key-compromise")
        tap.ok(p.returncode == 0 and e1.serial in p.stdout and "key-compromise" in p.stdout,
               "cert revoke SERIAL --reason key-compromise", show(p))
        s = signer_cert(st, e1.serial)
        tap.eq(s.status, C.CERTIFICATE_STATUS_REVOKED, "the signer's journal: revoked")
        tap.eq(s.revocation_reason, C.REVOCATION_REASON_KEY_COMPROMISE,
               "the signer's journal: reason keyCompromise")
        tap.ok(s.revoked_at > 0, "the signer's journal: the time of revocation")
        a = authz_cert(st, "1111", e1.serial)
        tap.eq(a.status if a else None, C.CERTIFICATE_STATUS_REVOKED,
               "authz mirrors the status")
        tap.eq(a.revocation_reason if a else None, C.REVOCATION_REASON_KEY_COMPROMISE,
               "authz mirrors the reason")
        dv = device(st, "1111")
        tap.eq(dv.current_serial, "", "the device no longer holds the revoked certificate")
        tap.eq(dv.state, C.DEVICE_STATE_REGISTERED, "the device is REGISTERED again")
        tap.eq(signer_cert(st, e2.serial).status, C.CERTIFICATE_STATUS_ACTIVE,
               "another device's certificate is untouched")

        again = st.enroll(d1, key="after-revoke")
        tap.ok(again.serial != e1.serial, "the device enrolls again with its registered key")

        p = cli("cert", "revoke", e1.serial.lower(), "--reason", "keyCompromise")
        tap.ok(p.returncode == 0, "revoking again with the same reason succeeds (idempotent)",
               show(p))
        p = cli("cert", "revoke", e1.serial, "--reason", "superseded")
        tap.ok(p.returncode == 8 and "keyCompromise" in p.stderr,
               "revoking again with another reason: exit 8, naming the first", show(p))
        p = cli("cert", "revoke", "00" * 16)
        tap.ok(p.returncode == 3, "an unknown serial: exit 3 (NOT_FOUND)", show(p))
        p = cli("cert", "revoke", "XYZ")
        tap.ok(p.returncode == 5, "not a serial: exit 5", show(p))
        p = cli("cert", "revoke", e2.serial, "--reason", "certificate-hold")
        tap.ok(p.returncode == 2 and "key-compromise" in p.stderr,
               "a reason we do not offer (certificate-hold): exit 2, listing the reasons",
               show(p))
        p = cli("cert", "revoke", e2.serial, "--ca", "no-such-ca")
        tap.ok(p.returncode == 3, "an unknown CA: exit 3", show(p))
        p = cli("--json", "cert", "revoke", again.serial, "--reason", "superseded")
        try:
            j = json.loads(p.stdout)
        except ValueError:
            j = {}
        tap.ok(p.returncode == 0 and j.get("status") == "revoked"
               and j.get("revocation_reason") == "superseded",
               "--json: status and reason", show(p))

        # authz down: the revocation holds at the signer; exit 10.
        st.authz.stop()
        p = cli("cert", "revoke", e2.serial, "--reason", "cessation-of-operation")
        tap.ok(p.returncode == 10 and "reconcile" in p.stderr,
               "authz down: exit 10, telling to run audit reconcile", show(p))
        tap.eq(signer_cert(st, e2.serial).status, C.CERTIFICATE_STATUS_REVOKED,
               "and the signer has the revocation")
        p = cli("cert", "revoke", "--help")
        tap.ok(p.returncode == 0 and "Usage: secretfree cert revoke" in p.stdout,
               "cert revoke --help", show(p))
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
