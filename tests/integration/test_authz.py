#!/usr/bin/python3
"""authz with the real signer on SoftHSM2: factory import into both, five
devices as in the reference (1111-1115) enrolling over TCP+TLS with a stock
grpcio client, each chain checked by `openssl verify`; the registry's
things, groups and policies; every refusal; idempotent retries; chunked
retrieval; the signer going away."""
import base64
import hashlib
import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import tap  # noqa: E402
from sfharness import (Authz, Device, RpcError, Signer, TempDir, Token,  # noqa: E402
                       build_hierarchy, expect_error, openssl_verify, protos,
                       server_cert, split_pem)

import grpc  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

pb = protos()
C, A, P, R = pb.common, pb.ca_admin, pb.provisioning, pb.registry
SC = grpc.StatusCode

REGION = {"1111": "us-east-1", "1112": "us-east-1", "1113": "us-east-1",
          "1114": "eu-west-1", "1115": "eu-west-1"}
KEYS = {"1111": "rsa-2048", "1112": "ec-p256", "1113": "rsa-2048",
        "1114": "ec-p256", "1115": "rsa-2048"}


def records(devs, region=True):
    return [C.DeviceKeyRecord(device_id=d.id, spki_der=d.spki_der(), product_line="widgiot",
                              region=REGION.get(d.id, "") if region else "", line=i + 1)
            for i, d in enumerate(devs)]


def import_both(sadmin, aadmin, recs):
    s = sadmin.call("CaAdmin", "RegisterDeviceKeys", A.RegisterDeviceKeysRequest(records=recs),
                    C.ImportResult)
    a = aadmin.call("Registry", "ImportDevices", R.ImportDevicesRequest(records=recs), C.ImportResult)
    return s, a


def enroll(cli, csr, key="", region=""):
    return cli.call("Provisioning", "Enroll", P.EnrollRequest(csr=csr, idempotency_key=key,
                                                              region=region), P.EnrollResponse)


def main():
    td = TempDir("sf-authz-")
    tmp = td.path
    sg = az = None
    try:
        tok = Token(os.path.join(tmp, "token"))
        # Device 1112 holds three live certificates (two idempotency keys).
        sg = Signer(tmp, tok, device_live=3).start()
        sadmin = sg.admin_client()
        build_hierarchy(sadmin)
        key, crt, root = server_cert(sadmin, tmp, "authz")
        az = Authz(tmp, sg, crt, key).start()
        aadmin = az.admin_client()
        dev = az.device_client(root)

        # The plain HTTP listener (libmicrohttpd): health, 404, 405, 413.
        st, _, body = az.http_get("/health")
        tap.eq((st, body), (200, b"ok\n"), "GET /health on [http] listen: 200 ok")
        st, _, _ = az.http_get("/no/such/thing")
        tap.eq(st, 404, "an unknown path: 404")
        st, hdr, _ = az.http_post("/health", b"x", "text/plain")
        tap.eq(st, 405, "POST to a GET-only path: 405")
        st, _, _ = az.http_post("/health", b"x" * (65 * 1024), "text/plain")
        tap.eq(st, 405, "a big body to a GET-only path: 405 before it is read")
        st, _, _ = az.http_post("/ocsp", b"x" * (65 * 1024), "application/ocsp-request")
        tap.eq(st, 413, "a body over the limit: 413 before any handler runs")

        devs = [Device(tmp, i, KEYS[i]) for i in sorted(REGION)]
        s, a = import_both(sadmin, aadmin, records(devs))
        tap.eq((s.imported, a.imported), (5, 5), "factory import: 5 devices into the signer and into authz")
        s, a = import_both(sadmin, aadmin, records(devs))
        tap.eq((a.imported, a.unchanged), (0, 5), "re-import into authz: 5 unchanged")

        # Refusals of the import, the same on both sides.
        other = Device(tmp, "other", "ec-p256")
        weak = Device(tmp, "weak", "rsa-1024")
        bad = [C.DeviceKeyRecord(device_id="1111", spki_der=other.spki_der(), product_line="widgiot", line=1),
               C.DeviceKeyRecord(device_id="8888", spki_der=devs[1].spki_der(), product_line="widgiot", line=2),
               C.DeviceKeyRecord(device_id="-bad", spki_der=other.spki_der(), product_line="widgiot", line=3),
               C.DeviceKeyRecord(device_id="weak", spki_der=weak.spki_der(), product_line="widgiot", line=4),
               C.DeviceKeyRecord(device_id="junk", spki_der=b"not a key", product_line="widgiot", line=5),
               C.DeviceKeyRecord(device_id="noline", spki_der=other.spki_der(), product_line="", line=6)]
        s, a = import_both(sadmin, aadmin, bad)
        sr = [(x.line, x.reason) for x in s.results]
        ar = [(x.line, x.reason) for x in a.results]
        tap.eq(ar, [(1, C.REFUSAL_REASON_ID_HAS_OTHER_KEY), (2, C.REFUSAL_REASON_KEY_HAS_OTHER_ID),
                    (3, C.REFUSAL_REASON_BAD_DEVICE_ID), (4, C.REFUSAL_REASON_KEY_TYPE_NOT_ALLOWED),
                    (5, C.REFUSAL_REASON_BAD_KEY), (6, C.REFUSAL_REASON_BAD_PRODUCT_LINE)],
               "authz refuses each bad record with its reason and line")
        tap.eq(sr, ar, "and the signer refuses the same records for the same reasons")
        tap.eq(a.refused, 6, "nothing of them imported")

        # Enrollment of the five reference devices over TCP + TLS.
        results = {}
        for d in devs:
            csr = d.csr()
            if d.id == "1113":
                csr = base64.b64encode(csr)   # the reference's header form
            try:
                r = enroll(dev, csr)
            except RpcError as e:
                tap.ok(False, "device %s enrolls" % d.id, e)
                continue
            results[d.id] = r
            ok, out = openssl_verify(tmp, r.chain_pem, r.certificate_pem)
            tap.ok(ok, "device %s (%s) enrolled; chain verifies with openssl verify" % (d.id, d.key_type), out)
            cert = x509.load_pem_x509_certificate(r.certificate_pem.encode())
            tap.eq(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value, d.id,
                   "device %s: CN is the device id" % d.id)
            issuer_cn = cert.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
            tap.eq(issuer_cn, "%s.widgiot.automatra.net" % REGION[d.id],
                   "device %s: issued by its region's CA" % d.id)
            tap.eq(r.ca_name, "%s.widgiot" % REGION[d.id], "device %s: ca_name in the reply" % d.id)
            tap.ok(r.enrollment_id.startswith("enr-") and not r.replayed,
                   "device %s: a new enrollment id" % d.id)
            tap.eq("%X" % cert.serial_number, r.serial.lstrip("0"), "device %s: serial in hex" % d.id)

        # The registry after enrollment.
        d = aadmin.call("Registry", "GetDevice", R.GetDeviceRequest(device_id="1111"), R.Device)
        tap.eq((d.state, d.current_serial), (C.DEVICE_STATE_ACTIVE, results["1111"].serial),
               "device 1111 is active with its certificate's serial")
        t = aadmin.call("Registry", "GetThing", R.GetThingRequest(name="1111"), R.Thing)
        attrs = {x.name: x.value for x in t.attributes}
        tap.eq(attrs, {"serialNumber": "1111", "region": "us-east-1"},
               "thing 1111 with the template's attributes (serialNumber = CN)")
        tap.eq(list(t.groups), ["widgiot-devices"], "thing 1111 is in the template's group")
        g = aadmin.call("Registry", "ListGroups", R.ListGroupsRequest(), R.ListGroupsResponse)
        tap.eq([(x.name, x.things) for x in g.groups], [("widgiot-devices", 5)], "the group holds the five things")
        certs = aadmin.call("Registry", "ListCertificates", R.ListDeviceCertificatesRequest(device_id="1112"),
                            R.ListDeviceCertificatesResponse)
        tap.eq([c.serial for c in certs.certificates], [results["1112"].serial],
               "device 1112's certificate is on record")
        pol = aadmin.call("Registry", "ListPolicies", R.ListPoliciesRequest(), R.ListPoliciesResponse)
        tap.eq([p.name for p in pol.policies], ["widgiot-telemetry"], "the policy from the configuration")

        # Refusals, each with DESIGN.md's status.
        stranger = Device(tmp, "9999", "ec-p256")
        e = expect_error(lambda: enroll(dev, stranger.csr()), SC.NOT_FOUND)
        tap.ok(e is not None and "9999" in e.details, "unknown device: NOT_FOUND", e)
        e = expect_error(lambda: enroll(dev, devs[0].csr(cn="1112")), SC.PERMISSION_DENIED)
        tap.ok(e is not None, "a device presenting another device's key: PERMISSION_DENIED", e)
        e = expect_error(lambda: enroll(dev, devs[3].csr(), region="us-east-1"), SC.PERMISSION_DENIED)
        tap.ok(e is not None and "eu-west-1" in e.details,
               "device 1114 (eu-west-1) asking for us-east-1: PERMISSION_DENIED", e)
        # A device-supplied string with a newline cannot forge a log line.
        before = len(az.log_text().splitlines())
        e = expect_error(lambda: enroll(dev, devs[0].csr(),
                                        region="us-east-1\n2026-01-01T00:00:00.000Z authz[1]:"
                                        " info: FORGED"), SC.INVALID_ARGUMENT)
        tap.ok(e is not None, "a region with a newline: INVALID_ARGUMENT", e)
        time.sleep(0.2)
        new = az.log_text().splitlines()[before:]
        tap.ok(not any("FORGED" in l and l.startswith("2026-01-01") for l in new),
               "no log line starts with the device's text", "\n".join(new))
        tap.ok(sum("FORGED" in l for l in new) == 1 and any("\\x0a" in l for l in new),
               "it is one line, the newline escaped as \\x0a", "\n".join(new))
        csr = bytearray(devs[1].csr(der=True))
        csr[-3] ^= 0x40
        e = expect_error(lambda: enroll(dev, bytes(csr)), SC.INVALID_ARGUMENT)
        tap.ok(e is not None, "a CSR with a broken signature: INVALID_ARGUMENT", e)
        e = expect_error(lambda: enroll(dev, b"\x00\x01garbage" * 5), SC.INVALID_ARGUMENT)
        tap.ok(e is not None, "garbage: INVALID_ARGUMENT", e)
        e = expect_error(lambda: enroll(dev, b"A" * 40000), SC.INVALID_ARGUMENT)
        tap.ok(e is not None and "16384" in e.details, "a CSR over the size limit: INVALID_ARGUMENT", e)
        e = expect_error(lambda: enroll(dev, b"B" * (200 * 1024)), SC.RESOURCE_EXHAUSTED)
        tap.ok(e is not None, "a request over the transport limit: RESOURCE_EXHAUSTED", e)
        nocn = Device(tmp, "nocn", "ec-p256")
        e = expect_error(lambda: enroll(dev, nocn.csr(cn="a\\/b")), SC.INVALID_ARGUMENT)
        tap.ok(e is not None, "a CN that is not a device id: INVALID_ARGUMENT", e)
        e = expect_error(lambda: dev.call("Registry", "ListDevices", R.ListDevicesRequest(),
                                          R.ListDevicesResponse), SC.PERMISSION_DENIED)
        tap.ok(e is not None, "Registry on the device listener: PERMISSION_DENIED", e)

        # Idempotency.
        csr = devs[4].csr()
        r1 = enroll(dev, devs[1].csr(), key="boot-1")
        r2 = enroll(dev, devs[1].csr(), key="boot-1")
        tap.eq(r2.serial, r1.serial, "the same idempotency key returns the same serial (even with a re-signed CSR)")
        tap.ok(r2.replayed and r2.enrollment_id == r1.enrollment_id, "flagged as replayed, same enrollment id")
        r5 = enroll(dev, devs[1].csr(), key="boot-2")
        tap.ok(r5.serial != r1.serial and not r5.replayed, "another idempotency key: a new certificate")
        r3 = enroll(dev, csr)
        r4 = enroll(dev, csr)
        tap.ok(r3.serial == r4.serial and r4.replayed,
               "without a key, the same CSR within the window returns the same certificate")

        # Latent retrieval, whole and in chunks.
        r = results["1112"]
        whole = r.certificate_pem + r.chain_pem
        f = dev.call("Provisioning", "FetchCertificate", P.FetchCertificateRequest(
            enrollment_id=r.enrollment_id), P.FetchCertificateResponse)
        tap.eq(f.data.decode(), whole, "FetchCertificate: the whole bundle, leaf then chain")
        tap.eq(f.sha256, hashlib.sha256(whole.encode()).digest(), "with its SHA-256")
        got, off = b"", 0
        while off < f.total:
            c = dev.call("Provisioning", "FetchCertificate", P.FetchCertificateRequest(
                enrollment_id=r.enrollment_id, offset=off, length=100), P.FetchCertificateResponse)
            if len(c.data) == 0:
                break
            got += c.data
            off += len(c.data)
        tap.eq(got.decode(), whole, "100-byte chunks reassemble to the same bytes")
        tap.eq(hashlib.sha256(got).digest(), f.sha256, "and the hash matches")
        e = expect_error(lambda: dev.call("Provisioning", "FetchCertificate", P.FetchCertificateRequest(
            enrollment_id=r.enrollment_id, offset=f.total + 1), P.FetchCertificateResponse), SC.OUT_OF_RANGE)
        tap.ok(e is not None, "an offset past the end: OUT_OF_RANGE")
        e = expect_error(lambda: dev.call("Provisioning", "FetchCertificate", P.FetchCertificateRequest(
            enrollment_id="enr-nope"), P.FetchCertificateResponse), SC.NOT_FOUND)
        tap.ok(e is not None, "an unknown enrollment id: NOT_FOUND")
        chunks = dev.stream("Provisioning", "StreamCertificate", P.StreamCertificateRequest(
            enrollment_id=r.enrollment_id, chunk_size=256), P.FetchCertificateResponse)
        tap.ok(b"".join(c.data for c in chunks).decode() == whole and all(len(c.data) <= 256 for c in chunks),
               "StreamCertificate: %d chunks of at most 256 bytes reassemble" % len(chunks))

        # Disabled device.
        aadmin.call("Registry", "DisableDevice", R.SetDeviceStateRequest(device_id="1115"), R.Device)
        e = expect_error(lambda: enroll(dev, devs[4].csr(cn="1115"), key="again"), SC.PERMISSION_DENIED)
        tap.ok(e is not None and "disabled" in e.details, "a disabled device: PERMISSION_DENIED", e)
        aadmin.call("Registry", "EnableDevice", R.SetDeviceStateRequest(device_id="1115"), R.Device)

        # A device authz knows but the signer does not: the signer's NOT_FOUND passes on.
        only = Device(tmp, "5555", "ec-p256")
        aadmin.call("Registry", "ImportDevices", R.ImportDevicesRequest(records=records([only])), C.ImportResult)
        e = expect_error(lambda: enroll(dev, only.csr()), SC.NOT_FOUND)
        tap.ok(e is not None, "registered in authz only: the signer's own check says NOT_FOUND", e)

        # The signer going away.
        sg.stop()
        late = Device(tmp, "6666", "ec-p256")
        e = expect_error(lambda: enroll(dev, late.csr()), SC.NOT_FOUND)
        aadmin.call("Registry", "ImportDevices", R.ImportDevicesRequest(records=records([late])), C.ImportResult)
        e = expect_error(lambda: enroll(dev, late.csr()), SC.UNAVAILABLE)
        tap.ok(e is not None, "signer stopped: UNAVAILABLE", e)
        tap.ok(az.proc.poll() is None, "authz is still running")
        sg.start()
        r = None
        for _ in range(40):   # authz reconnects within its 2 s back-off
            try:
                r = enroll(dev, devs[0].csr(), key="after-restart")
                break
            except RpcError as e:
                if e.code != SC.UNAVAILABLE:
                    raise
                time.sleep(0.1)
        tap.ok(r is not None and r.serial != "", "signer back: enrollment works again")

        dev.close()
        aadmin.close()
        sadmin.close()
        tap.eq(az.stop(), 0, "authz exits 0 on SIGTERM")
        az = None
    except Exception as e:
        import traceback
        tap.ok(False, "test raised %r" % e, traceback.format_exc())
        if az:
            tap.diag(az.log_text()[-3000:])
        if sg:
            tap.diag(sg.log_text()[-2000:])
    finally:
        if az:
            az.stop()
        if sg:
            sg.stop()
        td.cleanup()
    return tap.done()


if __name__ == "__main__":
    sys.exit(main())
