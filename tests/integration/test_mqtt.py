#!/usr/bin/python3
"""MQTT provisioning through authz's [mqtt] door (real signer and authz,
SoftHSM2, a real mosquitto broker on loopback with TLS, configured by
`secretfree mqtt config`, paho-mqtt devices):

- claim certificates: a device holding only the shared claim certificate
  (issued by our issuing CA: `secretfree ca issue-claim`) connects to the claim listener with its device
  id as client id, publishes its CSR and gets its certificate in chunks of
  at most 1024 bytes, reassembled as a device with a 1 KiB buffer would
  (each message in the buffer, the data written at its offset, a running
  SHA-256 checked against the one announced); openssl verify accepts it;
  the certificate then connects the device to the broker's devices
  listener; a retry with the same idempotency key gets the same
  enrollment; whole delivery in one message;
- the claim certificate gives transport, no authority: a CSR naming
  another device on one's own topic is PERMISSION_DENIED; a CSR whose key
  is not the registered one is PERMISSION_DENIED (403), an unregistered
  device NOT_FOUND (404), each on the device's topic; publishing on
  another device's topic reaches nobody (the ACL), and that device gets
  no certificate;
- device A never reads device B's certificate topic: with its own
  certificate or with the claim certificate, by name or with wildcards,
  A receives nothing while B enrolls, renews and acknowledges (and both
  of A's connections were up: each gets its own replies);
- renewal with acknowledgement over MQTT: B, connected with its
  certificate, renews (PENDING_ACK, deadline, the certificate it
  replaces), cannot acknowledge without a proof or with a wrong one
  (403), acknowledges with its new key's signature over the enrollment
  id (the old certificate SUPERSEDED in authz and at the signer), and
  connects with the new certificate; a renewal to a new key with the
  current key's signature moves the registered key;
- malformed payloads (not JSON, an array, unknown fields, bad chunk
  sizes, a payload over max_payload_bytes, an unknown enrollment) are
  answered with typed errors, and the door keeps serving;
- just-in-time provisioning over MQTT: a device unknown to authz, with
  the claim certificate, sends its CSR and a birth certificate from a
  manufacturer CA registered with `secretfree ca register-manufacturer`
  (made here with cryptography): certificate issued for the birth
  certificate's key, device registered with origin birth; a birth
  certificate from an unregistered CA is PERMISSION_DENIED and registers
  nothing; a factory device with a birth certificate is PERMISSION_DENIED;
- claim batches: `ca issue-claim` bad input (batch name, days) refused;
  `ca revoke-claim` revokes a batch at once (again: nothing more, an
  unknown batch: exit 3); the issuing CA's CRL lists it; a broker with
  that CRL (`mqtt config --crlfile`) refuses the revoked batch's claim
  certificate and admits another batch's;
- the door survives the broker: a broker restart is followed by a
  reconnection and requests are served again; a wrong password is
  logged and retried, and SIGHUP with the right one reconnects;
  SIGTERM stops authz cleanly."""
import base64
import datetime
import hashlib
import json
import os
import signal
import ssl
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import tap  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa  # noqa: E402
from sfharness import (Device, Mosquitto, MqttDevice, Stack, TempDir,  # noqa: E402
                       openssl_verify, protos, run, run_bytes, server_cert,
                       show, split_pem)

pb = protos()
C, A, R = pb.common, pb.ca_admin, pb.registry
PREFIX = "secretfree/provisioning"
MAX_PAYLOAD = 8192


def write(path, text):
    with open(path, "w" if isinstance(text, str) else "wb") as f:
        f.write(text)
    return path


def sign(keyfile, data):
    """The device's signature as common/keysig.h defines it."""
    with open(keyfile, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), None)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(hashes.SHA256()))
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    return key.sign(data)


def wait_for(fn, timeout=30, step=0.2):
    deadline = time.time() + timeout
    got = fn()
    while not got and time.time() < deadline:
        time.sleep(step)
        got = fn()
    return got


def claim_cert(st, tmp, batch):
    """The claim certificate of a batch, from our issuing CA (ca
    issue-claim): (chain file, certificate file, key file, CLI run)."""
    ca = os.path.join(tmp, "claim-%s-ca.pem" % batch)
    key, crt = os.path.join(tmp, "claim-%s.key" % batch), os.path.join(tmp, "claim-%s.crt" % batch)
    p = st.cli("ca", "issue-claim", "--batch", batch, "--key", key, "--generate-key",
               "--out", crt, "--chain-out", ca)
    if p.returncode != 0:
        raise RuntimeError("ca issue-claim: " + show(p))
    return ca, crt, key, p


class Env:
    def __init__(self, tmp):
        self.tmp = tmp
        self.st = Stack(tmp, regions=("us-east-1",), signer_kw={
            "limits_extra": "ack_timeout_seconds = 600\n"})
        st = self.st
        self.bkey, self.bcrt, root = server_cert(st.sadmin, tmp, "broker")
        self.root = write(os.path.join(tmp, "root.pem"), root)
        chain = st.sadmin.call("CaAdmin", "GetCaChain", A.GetCaRequest(
            name="us-east-1.widgiot"), A.GetChainResponse).chain_pem
        self.cas = write(os.path.join(tmp, "device-cas.pem"), chain)
        self.claim_ca, self.claim_crt, self.claim_key, self.claim_run = \
            claim_cert(st, tmp, "w49")
        self.mq = Mosquitto(os.path.join(tmp, "mqtt"), self.cas, self.bcrt, self.bkey,
                            claim_cafile=self.claim_ca).start()
        st.authz.stop()
        st.authz.write_conf(authz_extra="\n%s\nmax_payload_bytes = %d\n"
                            % (self.mq.authz_section(), MAX_PAYLOAD))
        st.authz.start()
        self.connected = 0
        self.wait_connected()
        self.conns = []

    def wait_connected(self, timeout=30):
        """Wait for authz's next "mqtt: connected" line."""
        want = self.connected + 1
        got = wait_for(lambda: self.st.authz.log_text().count("mqtt: connected to") >= want,
                       timeout)
        self.connected = self.st.authz.log_text().count("mqtt: connected to")
        return got

    def claim(self, client_id):
        """A connection with the claim certificate, client id as given."""
        m = MqttDevice(self.mq.claim_port, self.root, self.claim_crt, self.claim_key, client_id)
        self.conns.append(m)
        return m

    def own(self, device, cert_file):
        """A connection with the device's own certificate (devices listener)."""
        m = MqttDevice(self.mq.port, self.root, cert_file, device.key, device.id)
        self.conns.append(m)
        return m

    def close_all(self):
        for m in self.conns:
            try:
                m.close()
            except Exception:  # noqa: BLE001
                pass
        self.conns = []

    def certs(self, device_id):
        r = self.st.aadmin.call("Registry", "ListCertificates",
                                R.ListDeviceCertificatesRequest(device_id=device_id),
                                R.ListDeviceCertificatesResponse)
        return {c.serial: c for c in r.certificates}

    def scert(self, serial):
        return self.st.sadmin.call("CaAdmin", "GetCertificate",
                                   A.GetCertificateRequest(serial=serial), C.CertificateInfo)


def topic(device_id, kind):
    return "%s/%s/%s" % (PREFIX, device_id, kind)


def exchange(m, device_id, req, kind="csr", timeout=20):
    """Publish req (a dict, or raw bytes) on the device's kind topic and
    collect the reply: [raw messages]. One message, unless it is a
    certificate header announcing chunks, which are collected too."""
    body = req if isinstance(req, bytes) else json.dumps(req).encode()
    m.publish(topic(device_id, kind), body)
    first = m.next(timeout)
    if first is None:
        return []
    out = [first[1]]
    head = json.loads(first[1])
    for _ in range(head.get("chunks", 0)):
        nxt = m.next(timeout)
        if nxt is None:
            break
        out.append(nxt[1])
    return out


def reassemble_1k(msgs):
    """As a device with a 1 KiB receive buffer: every message must fit the
    buffer; each chunk's data is written at its offset into the device's
    storage and fed to a running SHA-256. Returns (bundle, header, why):
    bundle None with why when something does not fit or check."""
    buf = bytearray(1024)
    if any(len(raw) > len(buf) for raw in msgs):
        return None, None, "a message is longer than 1024 bytes: %s" % [len(r) for r in msgs]
    buf[:len(msgs[0])] = msgs[0]
    head = json.loads(bytes(buf[:len(msgs[0])]))
    storage = bytearray(head["total"])
    digest = hashlib.sha256()
    for i, raw in enumerate(msgs[1:]):
        buf[:len(raw)] = raw
        c = json.loads(bytes(buf[:len(raw)]))
        data = base64.b64decode(c["data"], validate=True)
        if (c["type"], c["index"], c["count"], c["total"], c["sha256"],
                c["enrollment_id"]) != ("chunk", i, head["chunks"], head["total"],
                                        head["sha256"], head["enrollment_id"]):
            return None, head, "chunk %d does not agree with the header: %s" % (i, c)
        storage[c["offset"]:c["offset"] + len(data)] = data
        digest.update(data)
    if digest.hexdigest() != head["sha256"] or len(storage) != head["total"]:
        return None, head, "SHA-256 mismatch"
    return bytes(storage).decode(), head, ""


def leaf_and_chain(bundle):
    certs = split_pem(bundle)
    return certs[0], "".join(certs[1:])


def claim_flow(env, d1, d2):
    """d1 enrolls with the claim certificate, in chunks of 1 KiB."""
    m = env.claim(d1.id)
    tap.ok(m.connected(), "a device with the claim certificate connects to the claim listener")
    tap.eq(m.subscribe(topic(d1.id, "cert")), 1, "  and subscribes to its certificate topic")
    req = {"id": "boot-1", "csr": d1.csr().decode(), "idempotency_key": "first-boot",
           "chunk_size": 1024}
    msgs = exchange(m, d1.id, req)
    bundle, head, why = reassemble_1k(msgs) if msgs else (None, None, "no reply")
    tap.ok(bundle is not None, "enrollment over MQTT: %d messages, each at most 1024 bytes,"
           " reassembled in a 1 KiB buffer, SHA-256 as announced" % len(msgs),
           why + "\n" + env.st.authz.log_text()[-2000:])
    if bundle is None:
        return None
    tap.eq((head["type"], head["request"], head["id"], head["state"], head["replayed"]),
           ("certificate", "enroll", "boot-1", "ISSUED", False),
           "  the header: certificate, enroll, its id, ISSUED, not replayed")
    tap.ok(head["chunks"] >= 3 and head["chunk_size"] == 1024,
           "  in %d chunks of at most 1024 bytes" % head["chunks"])
    leaf, chain = leaf_and_chain(bundle)
    good, out = openssl_verify(env.tmp, chain, leaf)
    tap.ok(good, "  openssl verify accepts the certificate with its chain", out)
    subj = run(["openssl", "x509", "-noout", "-subject", "-serial"], input=leaf).stdout
    tap.ok("CN = %s" % d1.id in subj and head["serial"] in subj,
           "  CN is the device id, serial as announced", subj)
    mod = run(["openssl", "x509", "-noout", "-pubkey"], input=leaf).stdout
    with open(d1.pub) as f:
        tap.eq(mod, f.read(), "  for the device's registered key")
    cert_file = write(os.path.join(env.tmp, "%s.crt" % d1.id), leaf)

    again = exchange(m, d1.id, dict(req, id="boot-2"))
    h2 = json.loads(again[0]) if again else {}
    tap.eq((h2.get("enrollment_id"), h2.get("serial"), h2.get("replayed"), h2.get("id")),
           (head["enrollment_id"], head["serial"], True, "boot-2"),
           "a retry with the same idempotency key: the same enrollment, replayed")

    # The claim gives transport, not authority.
    msgs = exchange(m, d1.id, {"id": "x", "csr": d2.csr().decode()})
    e = json.loads(msgs[0]) if msgs else {}
    tap.eq((e.get("type"), e.get("status"), e.get("code")), ("error", "PERMISSION_DENIED", 403),
           "a CSR naming another device on one's own topic: PERMISSION_DENIED, 403", e)
    tap.ok("names device %s" % d2.id in e.get("message", ""), "  saying which", e)
    watcher = env.claim(d2.id + "-watch")
    m.publish(topic(d2.id, "csr"), json.dumps({"csr": d2.csr().decode()}).encode())
    time.sleep(1.5)
    tap.eq(len(env.certs(d2.id)), 0,
           "publishing on another device's csr topic reaches nobody: no certificate for it")
    watcher.close()

    # The certificate works with the broker, as the device.
    m.close()
    mine = env.own(d1, cert_file)
    tap.ok(mine.connected(), "the new certificate connects the device to the devices listener")
    tap.eq(mine.subscribe(topic(d1.id, "cert")), 1, "  which lets it read its own topic")
    mine.close()
    return cert_file, head


def whole_delivery(env, d):
    m = env.claim(d.id)
    m.subscribe(topic(d.id, "cert"))
    msgs = exchange(m, d.id, {"csr": d.csr().decode()})
    r = json.loads(msgs[0]) if msgs else {}
    tap.eq((len(msgs), r.get("type"), r.get("device_id"), r.get("ca_name")),
           (1, "certificate", d.id, "us-east-1.widgiot"),
           "whole delivery: one certificate message", msgs[:1])
    if r.get("type") != "certificate":
        return None
    bundle = r["certificate_pem"] + r["chain_pem"]
    tap.ok(hashlib.sha256(bundle.encode()).hexdigest() == r["sha256"]
           and len(bundle) == r["total"], "  with the bundle's length and SHA-256")
    good, out = openssl_verify(env.tmp, r["chain_pem"], r["certificate_pem"])
    tap.ok(good, "  openssl verify accepts it", out)
    m.close()
    return write(os.path.join(env.tmp, "%s.crt" % d.id), r["certificate_pem"])


def refusals(env, d_wrong_key, other_key):
    """Statuses on the device's own topic."""
    m = env.claim(d_wrong_key.id)
    m.subscribe(topic(d_wrong_key.id, "cert"))
    csr = other_key.csr(cn=d_wrong_key.id).decode()
    e = json.loads((exchange(m, d_wrong_key.id, {"id": "k", "csr": csr}) or [b"{}"])[0])
    tap.eq((e.get("type"), e.get("status"), e.get("code"), e.get("request"), e.get("id")),
           ("error", "PERMISSION_DENIED", 403, "enroll", "k"),
           "a CSR whose key is not the registered key: PERMISSION_DENIED, 403", e)
    tap.ok("not the key registered" in e.get("message", ""), "  saying so", e)
    m.close()
    m = env.claim("9999")
    m.subscribe(topic("9999", "cert"))
    csr = other_key.csr(cn="9999").decode()
    e = json.loads((exchange(m, "9999", {"csr": csr}) or [b"{}"])[0])
    tap.eq((e.get("status"), e.get("code")), ("NOT_FOUND", 404),
           "an unregistered device: NOT_FOUND, 404", e)
    m.close()


def mfr_ca(cn):
    """A manufacturer's root CA: (key, certificate)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True,
                                         False, False), True)
            .sign(key, hashes.SHA256()))
    return key, cert


def birth_pem(ca, device):
    """A birth certificate from ca (key, cert) for device's key."""
    now = datetime.datetime.now(datetime.timezone.utc)
    with open(device.key, "rb") as f:
        pub = serialization.load_pem_private_key(f.read(), None).public_key()
    b = (x509.CertificateBuilder()
         .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device.id)]))
         .issuer_name(ca[1].subject).public_key(pub)
         .serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(days=1))
         .not_valid_after(now + datetime.timedelta(days=3650))
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), True))
    return b.sign(ca[0], hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def jitp(env, factory_dev):
    """Just-in-time provisioning: a birth certificate in the enroll request."""
    acme, other = mfr_ca("Acme MQTT Root CA"), mfr_ca("Other MQTT Root CA")
    f = write(os.path.join(env.tmp, "acme-mqtt.pem"), acme[1].public_bytes(
        serialization.Encoding.PEM).decode())
    p = env.st.cli("ca", "register-manufacturer", f, "--product-line", "widgiot")
    tap.eq(p.returncode, 0, "ca register-manufacturer (for MQTT JITP)", p.stdout + p.stderr)
    d = Device(env.tmp, "acme-mq-0001")
    m = env.claim(d.id)
    m.subscribe(topic(d.id, "cert"))
    msgs = exchange(m, d.id, {"csr": d.csr().decode(), "birth_certificate": birth_pem(acme, d)})
    r = json.loads(msgs[0]) if msgs else {}
    tap.eq((r.get("type"), r.get("device_id")), ("certificate", d.id),
           "an unknown device with the claim certificate and a registered manufacturer's"
           " birth certificate: its certificate over MQTT", msgs[:1])
    if r.get("type") == "certificate":
        good, out = openssl_verify(env.tmp, r["chain_pem"], r["certificate_pem"])
        tap.ok(good, "  openssl verify accepts it", out)
        k = env.st.sadmin.call("CaAdmin", "GetDeviceKey", A.GetDeviceKeyRequest(
            device_id=d.id), C.DeviceKeyInfo)
        tap.eq((k.origin, k.product_line), ("birth:acme-mqtt-root-ca", "widgiot"),
               "  registered at the signer on first contact, origin birth")
    m.close()
    d2 = Device(env.tmp, "other-mq-0001")
    m = env.claim(d2.id)
    m.subscribe(topic(d2.id, "cert"))
    e = json.loads((exchange(m, d2.id, {"csr": d2.csr().decode(),
                                        "birth_certificate": birth_pem(other, d2)})
                    or [b"{}"])[0])
    tap.eq((e.get("type"), e.get("status"), e.get("code")), ("error", "PERMISSION_DENIED", 403),
           "a birth certificate from an unregistered CA: PERMISSION_DENIED, 403", e)
    m.close()
    m = env.claim(factory_dev.id)
    m.subscribe(topic(factory_dev.id, "cert"))
    e = json.loads((exchange(m, factory_dev.id, {"csr": factory_dev.csr().decode(),
                                                 "birth_certificate": birth_pem(acme,
                                                                                factory_dev)})
                    or [b"{}"])[0])
    tap.eq((e.get("status"), e.get("code")), ("PERMISSION_DENIED", 403),
           "a factory device with a birth certificate: PERMISSION_DENIED, 403", e)
    tap.ok("factory list" in e.get("message", ""), "  saying it enrolls by its registered key", e)
    m.close()


def malformed(env, d):
    """Malformed payloads: typed errors, and the door keeps serving."""
    m = env.claim(d.id)
    m.subscribe(topic(d.id, "cert"))
    cases = [
        (b"not json at all", "INVALID_ARGUMENT", 400, "not JSON"),
        (b"[1, 2, 3]", "INVALID_ARGUMENT", 400, "JSON object"),
        (b'{"csr": "x", "colour": "blue"}', "INVALID_ARGUMENT", 400, "unknown field"),
        (b'{"csr": "x", "chunk_size": 100}', "INVALID_ARGUMENT", 400, "chunk_size"),
        (b'{"csr": "not a csr"}', "INVALID_ARGUMENT", 400, "CSR"),
        (b'{"type": "fetch", "enrollment_id": "enr-nope"}', "NOT_FOUND", 404, "no enrollment"),
        (b"\xff\xfe\x00garbage", "INVALID_ARGUMENT", 400, "not JSON"),
        (b'{"csr": "' + b"A" * (MAX_PAYLOAD + 10) + b'"}', "INVALID_ARGUMENT", 413,
         "at most %d" % MAX_PAYLOAD),
    ]
    for body, status, code, words in cases:
        got = exchange(m, d.id, body)
        e = json.loads(got[0]) if got else {}
        tap.ok((e.get("type"), e.get("status"), e.get("code")) == ("error", status, code)
               and words in e.get("message", "") and len(got[0]) <= 512,
               "malformed %r...: %s %d" % (body[:24], status, code), e)
    got = exchange(m, d.id, b'{"enrollment_id": "enr-1"}', kind="ack", timeout=2)
    tap.eq(got, [], "the claim certificate may not publish on the ack topic: no answer")
    tap.ok(env.st.authz.proc.poll() is None, "authz is still running")
    r = json.loads((exchange(m, d.id, {"csr": d.csr().decode(), "chunk_size": 2048})
                    or [b"{}"])[0])
    tap.eq(r.get("type"), "certificate", "  and the door still serves a good request", r)
    m.close()


class Spies:
    """Device A listening for device B's replies: with its own certificate
    (by name, with +, with #), and a claim client under its own client id
    (by name and with #), from before B enrolls until after B renewed."""

    def __init__(self, env, a, a_cert, claim_id, b):
        self.env, self.a, self.claim_id, self.b = env, a, claim_id, b
        self.own = env.own(a, a_cert)
        tap.ok(self.own.connected(), "device A connects with its certificate")
        self.granted = [self.own.subscribe(t)
                        for t in (topic(b.id, "cert"), PREFIX + "/+/cert", "#")]
        self.claim = env.claim(claim_id)
        self.claim.subscribe(topic(b.id, "cert"))
        self.claim.subscribe(PREFIX + "/#")

    def check(self, a_eid):
        time.sleep(0.5)
        leaked = []
        for m in (self.own, self.claim):
            while True:
                x = m.next(0.2)
                if x is None:
                    break
                leaked.append(x[0])
        tap.eq(leaked, [], "device A received none of B's messages while B enrolled, renewed and"
               " acknowledged (own certificate, subscriptions granted %s; claim certificate,"
               " by name and with #)" % self.granted)
        # Both were listening all along: each gets what is its own.
        r = exchange(self.own, self.a.id, {"type": "fetch", "enrollment_id": a_eid})
        tap.eq(json.loads(r[0]).get("enrollment_id") if r else None, a_eid,
               "  A's own connection was up: it gets its own certificate again")
        r = exchange(self.claim, self.claim_id, b"{}")
        tap.eq(json.loads(r[0]).get("status") if r else None, "INVALID_ARGUMENT",
               "  the claim spy was up: it gets the answer on its own topic")
        self.own.close()
        self.claim.close()


def isolation_and_renewal(env, b, b_cert, b_head, other):
    """B, with its own certificate, renews over MQTT and acknowledges
    (other: a device whose key is not B's)."""
    st = env.st
    mb = env.own(b, b_cert)
    tap.ok(mb.connected(), "device B connects with its certificate")
    mb.subscribe(topic(b.id, "cert"))
    # No proof: the broker's word is not a proof of a key.
    old = b_head["serial"]
    msgs = exchange(mb, b.id, {"type": "renew", "id": "rn-1", "csr": b.csr().decode(),
                               "current_serial": old, "idempotency_key": "renew-1",
                               "chunk_size": 1024})
    bundle, head, why = reassemble_1k(msgs) if msgs else (None, None, "no reply")
    tap.ok(bundle is not None, "renewal over MQTT in 1 KiB chunks, reassembled and checked", why)
    if bundle is None:
        return
    tap.eq((head["request"], head["state"], head["replaces_serial"]),
           ("renew", "PENDING_ACK", old),
           "  PENDING_ACK, replacing the current certificate")
    tap.ok(head["ack_deadline"] > time.time(), "  with an acknowledgement deadline")
    new = head["serial"]
    tap.eq(env.certs(b.id)[old].status, C.CERTIFICATE_STATUS_ACTIVE,
           "  the old certificate stays ACTIVE until the acknowledgement")

    eid = head["enrollment_id"]
    e = json.loads((exchange(mb, b.id, {"csr": "x"}, kind="ack") or [b"{}"])[0])
    tap.eq((e.get("status"), e.get("request")), ("INVALID_ARGUMENT", "ack"),
           "an enroll request on the ack topic: INVALID_ARGUMENT", e)
    e = json.loads((exchange(mb, b.id, {"enrollment_id": eid}, kind="ack") or [b"{}"])[0])
    tap.eq((e.get("status"), e.get("code"), e.get("request")), ("PERMISSION_DENIED", 403, "ack"),
           "an acknowledgement without a proof: PERMISSION_DENIED, 403", e)
    bad = base64.b64encode(sign(other.key, eid.encode())).decode()
    e = json.loads((exchange(mb, b.id, {"enrollment_id": eid, "key_signature": bad},
                             kind="ack") or [b"{}"])[0])
    tap.eq(e.get("status"), "PERMISSION_DENIED", "  with another key's signature: refused", e)
    sig = base64.b64encode(sign(b.key, eid.encode())).decode()
    r = json.loads((exchange(mb, b.id, {"id": "ack-1", "enrollment_id": eid, "serial": new,
                                        "key_signature": sig}, kind="ack") or [b"{}"])[0])
    tap.eq((r.get("type"), r.get("id"), r.get("serial"), r.get("superseded_serial")),
           ("acknowledged", "ack-1", new, old),
           "acknowledged over MQTT with the new key's signature", r)
    certs = env.certs(b.id)
    tap.eq((certs[new].status, certs[old].status),
           (C.CERTIFICATE_STATUS_ACTIVE, C.CERTIFICATE_STATUS_SUPERSEDED),
           "  authz: the new certificate ACTIVE, the old one SUPERSEDED")
    tap.eq((env.scert(new).status, env.scert(old).status),
           (C.CERTIFICATE_STATUS_ACTIVE, C.CERTIFICATE_STATUS_SUPERSEDED),
           "  the signer agrees")
    r2 = json.loads((exchange(mb, b.id, {"enrollment_id": eid, "key_signature": sig},
                              kind="ack") or [b"{}"])[0])
    tap.eq(r2.get("type"), "acknowledged", "  acknowledging again is harmless", r2)
    mb.close()

    leaf, _ = leaf_and_chain(bundle)
    nb = env.own(b, write(os.path.join(env.tmp, "%s-2.crt" % b.id), leaf))
    tap.ok(nb.connected(), "the renewed certificate connects B to the broker")

    # A new key, moved to with the current key's signature over the CSR.
    newkey = Device(env.tmp, b.id + "-nk")
    csr_pem = newkey.csr(cn=b.id)
    write(os.path.join(env.tmp, "nk.csr"), csr_pem)
    csr_der = run_bytes(["openssl", "req", "-in", os.path.join(env.tmp, "nk.csr"),
                         "-outform", "DER"])
    nb.subscribe(topic(b.id, "cert"))
    ksig = base64.b64encode(sign(b.key, csr_der)).decode()
    r = json.loads((exchange(nb, b.id, {"type": "renew", "csr": csr_pem.decode(),
                                        "current_serial": new,
                                        "current_key_signature": ksig}) or [b"{}"])[0])
    tap.eq((r.get("type"), r.get("state")), ("certificate", "PENDING_ACK"),
           "a renewal to a new key with the current key's signature", r)
    if r.get("type") == "certificate":
        asig = base64.b64encode(sign(newkey.key, r["enrollment_id"].encode())).decode()
        a2 = json.loads((exchange(nb, b.id, {"enrollment_id": r["enrollment_id"],
                                             "key_signature": asig}, kind="ack")
                         or [b"{}"])[0])
        dev = st.aadmin.call("Registry", "GetDevice", R.GetDeviceRequest(device_id=b.id),
                             R.Device)
        tap.ok(a2.get("type") == "acknowledged"
               and dev.key_sha256 == hashlib.sha256(newkey.spki_der()).digest(),
               "  acknowledged: the new key is the device's registered key", (a2, dev))
    nb.close()


def survives_broker(env, d):
    """A broker restart, a wrong password, SIGHUP."""
    st = env.st
    env.mq.stop()
    time.sleep(1.5)
    env.mq.start()
    tap.ok(env.wait_connected(), "after a broker restart authz reconnects",
           st.authz.log_text()[-1500:])
    tap.ok("lost the connection to broker" in st.authz.log_text(),
           "  having logged the lost connection")
    m = env.claim(d.id)
    m.subscribe(topic(d.id, "cert"))
    r = json.loads((exchange(m, d.id, {"csr": d.csr().decode()}) or [b"{}"])[0])
    tap.eq(r.get("type"), "certificate", "  and serves requests again", r)
    m.close()

    with open(env.mq.password_file) as f:
        good = f.read()
    write(env.mq.password_file, "wrong-password\n")
    st.authz.signal(signal.SIGHUP)
    tap.ok(wait_for(lambda: "refused the connection" in st.authz.log_text(), 20),
           "SIGHUP with a wrong password: the broker's refusal is logged",
           st.authz.log_text()[-1500:])
    tap.ok(st.authz.proc.poll() is None, "  and authz keeps running")
    write(env.mq.password_file, good)
    env.connected = st.authz.log_text().count("mqtt: connected to")
    st.authz.signal(signal.SIGHUP)
    tap.ok(env.wait_connected(), "SIGHUP with the right one: connected again",
           st.authz.log_text()[-1500:])
    tap.ok(st.authz.log_text().count("wrong-password") == 0, "  the password is never logged")
    rc = st.authz.stop()
    tap.eq(rc, 0, "SIGTERM: authz stops cleanly with the door connected")
    st.authz = None


def cli_help(env):
    cli = os.environ.get("SF_CLI") or os.path.join(os.path.dirname(__file__), "..", "..",
                                                   "build", "client", "secretfree")
    p = run([cli, "mqtt", "config", "--help"], check=False)
    tap.ok(p.returncode == 0 and "--claim-cafile" in p.stdout and "Example:" in p.stdout,
           "secretfree mqtt config --help", p.stdout + p.stderr)
    base = ["mqtt", "config", "--cafile", env.cas, "--certfile", env.bcrt, "--keyfile", env.bkey]
    p = run([cli, "--json"] + base + ["--claim-cafile", env.claim_ca], check=False)
    doc = json.loads(p.stdout) if p.returncode == 0 else {}
    tap.eq(sorted(doc), ["authz-mqtt.conf", "claim.acl", "devices.acl", "mosquitto.conf",
                         "service.acl"], "mqtt config --json: file name -> contents", p.stderr)
    p = run([cli] + base, check=False)
    tap.ok(p.returncode == 0 and "# ---- claim.acl" not in p.stdout
           and "# ---- service.acl ----" in p.stdout,
           "without --claim-cafile: no claim listener, printed with file headers", p.stdout)
    p = run([cli] + base + ["--listen", "0"], check=False)
    tap.eq(p.returncode, 2, "a listener on port 0: usage error", p.stderr)
    p = run([cli] + base + ["--topic-prefix", "a/+/b"], check=False)
    tap.eq(p.returncode, 2, "a topic prefix with a wildcard: usage error", p.stderr)
    with open(os.path.join(env.mq.dir, "devices.acl")) as f:
        acl = f.read()
    tap.ok("pattern read %s/%%u/cert" % PREFIX in acl and "pattern write %s/%%u/csr" % PREFIX
           in acl, "the devices ACL is per user name (%u)", acl)


def claim_batches(env, d):
    """ca issue-claim / revoke-claim, and a broker that reads the CRL."""
    st, tmp = env.st, env.tmp
    p = env.claim_run
    tap.ok("batch" in p.stdout and "(generated)" in p.stdout,
           "ca issue-claim: batch, serial, the key generated", show(p))
    subj = run(["openssl", "x509", "-in", env.claim_crt, "-noout", "-subject", "-ext",
                "extendedKeyUsage,basicConstraints"]).stdout
    tap.ok("OU = claim" in subj and "CN = claim-w49" in subj and "TLS Web Client" in subj
           and "Server" not in subj, "  subject OU=claim, CN=claim-<batch>; clientAuth only",
           subj)
    good, out = openssl_verify(tmp, open(env.claim_ca).read(), open(env.claim_crt).read())
    tap.ok(good, "  openssl verify: it chains to our root (the --chain-out file)", out)
    serial = run(["openssl", "x509", "-in", env.claim_crt, "-noout", "-serial"]
                 ).stdout.strip().split("=")[1]
    p = st.cli("--json", "cert", "show", serial)
    j = json.loads(p.stdout) if p.returncode == 0 else {}
    tap.eq((j.get("profile"), j.get("enrollment_id"), j.get("device_id", "")),
           ("claim", "claim:w49", ""), "  journaled: profile claim, enrollment id"
           " claim:<batch>, no device", show(p))
    for args, code, what in (
            (["--batch", "bad/name"], 5, "a batch name with '/': INVALID_ARGUMENT"),
            (["--batch", "x" * 49], 5, "a batch name of 49 characters: INVALID_ARGUMENT"),
            (["--batch", "w51", "--days", "3651"], 2, "--days 3651: usage error"),
            (["--batch", "w51", "--ca", "nope"], 3, "an unknown CA: NOT_FOUND")):
        p = st.cli("ca", "issue-claim", "--key", env.claim_key,
                   "--out", os.path.join(tmp, "x.crt"), *args)
        tap.eq(p.returncode, code, "ca issue-claim: " + what, show(p))
    other_ca, other_crt, other_key, _ = claim_cert(st, tmp, "w50")
    p = st.cli("ca", "revoke-claim", "--batch", "w49", "--reason", "key-compromise")
    tap.ok(p.returncode == 0 and "1 certificate(s) revoked now" in p.stdout
           and serial in p.stdout and "  revoked  " in p.stdout,
           "ca revoke-claim --batch w49: the batch's certificate revoked", show(p))
    p = st.cli("--json", "ca", "revoke-claim", "--batch", "w49")
    j = json.loads(p.stdout) if p.returncode == 0 else {}
    tap.eq((j.get("revoked"), [c.get("status") for c in j.get("certificates", [])]),
           (0, ["revoked"]), "  again: nothing more revoked, succeeds", show(p))
    p = st.cli("ca", "revoke-claim", "--batch", "w99")
    tap.eq(p.returncode, 3, "  an unknown batch: exit 3 (NOT_FOUND)", show(p))
    crl = os.path.join(tmp, "claim-crl.pem")

    def listed():
        q = st.cli("ca", "crl", "us-east-1.widgiot", "--out", crl)
        return q.returncode == 0 and serial in run(
            ["openssl", "crl", "-in", crl, "-noout", "-text"]).stdout.replace(":", "")
    tap.ok(wait_for(listed, timeout=30), "  the issuing CA's CRL lists the claim certificate")
    mq = Mosquitto(os.path.join(tmp, "mqtt-crl"), env.cas, env.bcrt, env.bkey,
                   claim_cafile=env.claim_ca, crlfile=crl).start()
    try:
        try:
            bad = MqttDevice(mq.claim_port, env.root, env.claim_crt, env.claim_key, d.id)
            refused = not bad.connected()
        except (OSError, ssl.SSLError):   # the handshake fails
            bad, refused = None, True
        ok = MqttDevice(mq.claim_port, env.root, other_crt, other_key, d.id)
        tap.ok(refused and ok.connected(),
               "a broker with that CRL (mqtt config --crlfile) refuses batch w49's claim"
               " certificate and admits batch w50's", mq.log_text()[-1500:])
        for m in (bad, ok):
            try:
                if m is None:
                    continue
                m.close()
            except Exception:  # noqa: BLE001
                pass
    finally:
        mq.stop()


def main():
    td = TempDir("sf-mqtt-")
    env = None
    try:
        env = Env(td.path)
        devs = [Device(td.path, "60%02d" % i) for i in range(1, 7)]
        stranger = Device(td.path, "stranger")
        env.st.register(devs)
        got = claim_flow(env, devs[0], devs[1])
        spies = Spies(env, devs[0], got[0], devs[5].id, devs[1]) if got else None
        b_cert = whole_delivery(env, devs[1])
        refusals(env, devs[2], stranger)
        malformed(env, devs[3])
        if got and b_cert:
            b_certs = env.certs(devs[1].id)
            b_head = {"serial": list(b_certs)[0]}
            isolation_and_renewal(env, devs[1], b_cert, b_head, devs[0])
            spies.check(got[1]["enrollment_id"])
        cli_help(env)
        jitp(env, devs[2])
        claim_batches(env, devs[4])
        survives_broker(env, devs[4])
    except Exception as e:  # noqa: BLE001
        import traceback
        tap.ok(False, "test raised %r" % e, traceback.format_exc())
    finally:
        if env is not None:
            env.close_all()
            env.st.stop()
            env.mq.stop()
        td.cleanup()
    return tap.done()


if __name__ == "__main__":
    sys.exit(main())
