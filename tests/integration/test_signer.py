#!/usr/bin/python3
"""The real secretfree-signer on a SoftHSM2 token and temporary sockets,
driven by stock Python grpcio: the CA hierarchy, device key registration,
issuance checked with `openssl verify -x509_strict` and the `cryptography`
parser, every refusal of DESIGN.md's table, the journal, the sockets'
allowlists, key attributes seen by pkcs11-tool, reload and restart."""
import concurrent.futures
import datetime
import hashlib
import os
import re
import signal
import sqlite3
import stat
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import tap  # noqa: E402
from sfharness import (BUILD, SCALE, SOFTHSM_MODULE, Client, Device, RpcError,  # noqa: E402
                       Signer, TempDir, Token, build_hierarchy, expect_error,
                       openssl_verify, protos, run, split_pem)

import grpc  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: E402

pb = protos()
C = pb.common
A = pb.ca_admin
S = pb.signer
SC = grpc.StatusCode


def issue(cli, csr, region="us-east-1", product="widgiot"):
    return cli.call("Signer", "Issue", S.IssueRequest(
        csr=csr, product_line=product, region=region, requester="test"),
        S.IssueResponse)


def register(admin, records):
    return admin.call("CaAdmin", "RegisterDeviceKeys",
                      A.RegisterDeviceKeysRequest(records=records), C.ImportResult)


def test_cli_surface(tmp):
    binary = os.path.join(BUILD, "signer", "secretfree-signer")
    p = run([binary, "--help"], check=False)
    tap.ok(p.returncode == 0 and "Usage: secretfree-signer" in p.stdout
           and "SIGHUP" in p.stdout, "--help prints the manual and exits 0")
    p = run([binary], check=False)
    tap.eq(p.returncode, 2, "no -c: usage error, exit 2")
    bad = os.path.join(tmp, "bad.conf")
    with open(bad, "w") as f:
        f.write("[signer]\njournal = /tmp/x.db\njurnal = typo\n")
    p = run([binary, "-c", bad], check=False)
    tap.ok(p.returncode == 1 and "jurnal" in p.stderr,
           "unknown configuration key refused, named in the error", p.stderr)


def test_hierarchy(sg, admin, tmp):
    cas = build_hierarchy(admin, key_types={"eu-west-1.widgiot": C.KEY_TYPE_RSA_2048})
    tap.eq(sorted(cas), ["eu-west-1.widgiot", "root", "us-east-1.widgiot", "widgiot"],
           "root, intermediate and two issuing CAs created")
    lst = admin.call("CaAdmin", "ListCas", A.ListCasRequest(), A.ListCasResponse)
    tap.eq(sorted((c.name, c.state) for c in lst.cas),
           sorted((n, C.CA_STATE_ACTIVE) for n in cas), "ListCas: all four active")
    root = x509.load_pem_x509_certificate(cas["root"].certificate_pem.encode())
    inter = x509.load_pem_x509_certificate(cas["widgiot"].certificate_pem.encode())
    iss = x509.load_pem_x509_certificate(cas["us-east-1.widgiot"].certificate_pem.encode())
    tap.eq(iss.subject.rfc4514_string(),
           "CN=us-east-1.widgiot.automatra.net,OU=WidgIoT us-east-1,O=Automatra,C=US",
           "issuing CA subject from the configured template (as the reference)")
    bc = iss.extensions.get_extension_for_class(x509.BasicConstraints)
    tap.ok(bc.critical and bc.value.ca and bc.value.path_length == 0,
           "issuing CA: critical CA:TRUE, pathLen 0")
    bc = inter.extensions.get_extension_for_class(x509.BasicConstraints)
    tap.ok(bc.value.ca and bc.value.path_length == 1, "intermediate: pathLen 1")
    ku = iss.extensions.get_extension_for_class(x509.KeyUsage)
    tap.ok(ku.critical and ku.value.key_cert_sign and ku.value.crl_sign,
           "CA key usage: critical keyCertSign, cRLSign")
    cdp = iss.extensions.get_extension_for_class(x509.CRLDistributionPoints)
    tap.eq(cdp.value[0].full_name[0].value, "http://crl.automatra.net/widgiot.crl",
           "issuing CA's CRL DP is its parent's CRL")
    aki = iss.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    ski = inter.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    tap.eq(aki.value.key_identifier, ski.value.digest, "AKI of the issuing CA = SKI of its parent")
    tap.ok(isinstance(root.public_key().curve, type(root.public_key().curve))
           and root.public_key().curve.name == "secp384r1", "root key is P-384 as configured")
    chain = admin.call("CaAdmin", "GetCaChain", A.GetCaRequest(name="us-east-1.widgiot"),
                       A.GetChainResponse)
    tap.eq(list(chain.names), ["us-east-1.widgiot", "widgiot", "root"], "chain names, issuing first")
    certs = split_pem(chain.chain_pem)
    ok, out = openssl_verify(tmp, "".join(certs[1:]), certs[0])
    tap.ok(ok, "issuing CA verifies up to the root (openssl verify -x509_strict)", out)
    e = expect_error(lambda: admin.call("CaAdmin", "CreateCa", A.CreateCaRequest(
        role=C.CA_ROLE_ROOT), A.CreateCaResponse), SC.ALREADY_EXISTS)
    tap.ok(e is not None and "rotate" in e.details, "a second root: ALREADY_EXISTS, says to rotate",
           e and e.details)
    e = expect_error(lambda: admin.call("CaAdmin", "CreateCa", A.CreateCaRequest(
        role=C.CA_ROLE_INTERMEDIATE, product_line="gadgetx"), A.CreateCaResponse),
        SC.FAILED_PRECONDITION)
    tap.ok(e is not None and "[product.gadgetx]" in e.details,
           "unconfigured product line: FAILED_PRECONDITION naming the section", e and e.details)
    e = expect_error(lambda: admin.call("CaAdmin", "CreateCa", A.CreateCaRequest(
        role=C.CA_ROLE_ISSUING, product_line="widgiot", region="US East!"),
        A.CreateCaResponse), SC.INVALID_ARGUMENT)
    tap.ok(e is not None, "bad region id: INVALID_ARGUMENT")
    return cas


def test_key_attributes(sg, cas):
    env = sg.token.env()
    p = run(["pkcs11-tool", "--module", SOFTHSM_MODULE, "--token-label", sg.token.label,
             "--login", "--pin", sg.token.pin(), "--list-objects", "--type", "privkey"],
            check=False, env=env)
    blocks = [b for b in p.stdout.split("Private Key Object") if "label:" in b]
    labels = {}
    for b in blocks:
        lab = [l.split(":", 1)[1].strip() for l in b.splitlines() if "label:" in l][0]
        labels[lab] = b
    for name, ca in cas.items():
        b = labels.get(ca.key_label)
        if not tap.ok(b is not None, "pkcs11-tool lists the key of %s (%s)" % (name, ca.key_label),
                      p.stdout + p.stderr):
            continue
        usage = [l for l in b.splitlines() if "Usage:" in l]
        access = [l for l in b.splitlines() if "Access:" in l]
        tap.ok(usage and usage[0].split(":", 1)[1].strip() == "sign",
               "%s key usage is sign only" % name, usage)
        tap.ok(access and "sensitive" in access[0] and "never extractable" in access[0],
               "%s key is sensitive and never extractable" % name, access)
    tap.ok(all("pkcs11:token=" in c.key_uri and "object=" + c.key_label in c.key_uri
               for c in cas.values()), "every CA names its key by an RFC 7512 URI")


def test_register(admin, tmp):
    devs = {
        "1111": Device(tmp, "1111", "rsa-2048"),
        "1112": Device(tmp, "1112", "ec-p256"),
        "1113": Device(tmp, "1113", "ec-p384"),
        "1114": Device(tmp, "1114", "ed25519"),
        "1115": Device(tmp, "1115", "rsa-4096"),
    }
    region = {"1111": "us-east-1", "1112": "us-east-1", "1113": "us-east-1",
              "1114": "eu-west-1", "1115": "eu-west-1"}
    recs = [C.DeviceKeyRecord(device_id=i, spki_der=d.spki_der(), product_line="widgiot",
                              region=region[i], line=n + 1)
            for n, (i, d) in enumerate(sorted(devs.items()))]
    weak = Device(tmp, "weak", "rsa-1024")
    other = Device(tmp, "other", "ec-p256")
    bad = [
        C.DeviceKeyRecord(device_id="bad/id", spki_der=other.spki_der(), product_line="widgiot", line=6),
        C.DeviceKeyRecord(device_id="weak", spki_der=weak.spki_der(), product_line="widgiot", line=7),
        C.DeviceKeyRecord(device_id="junk", spki_der=b"\x30\x03\x02\x01\x00", product_line="widgiot", line=8),
        C.DeviceKeyRecord(device_id="1111", spki_der=other.spki_der(), product_line="widgiot", line=9),
        C.DeviceKeyRecord(device_id="9999", spki_der=devs["1112"].spki_der(), product_line="widgiot", line=10),
    ]
    r = register(admin, recs + bad)
    tap.eq((r.imported, r.unchanged, r.refused), (5, 0, 5), "5 imported, 5 refused")
    reasons = [(x.line, x.reason) for x in r.results if x.outcome == C.RECORD_OUTCOME_REFUSED]
    tap.eq(reasons, [(6, C.REFUSAL_REASON_BAD_DEVICE_ID), (7, C.REFUSAL_REASON_KEY_TYPE_NOT_ALLOWED),
                     (8, C.REFUSAL_REASON_BAD_KEY), (9, C.REFUSAL_REASON_ID_HAS_OTHER_KEY),
                     (10, C.REFUSAL_REASON_KEY_HAS_OTHER_ID)],
           "each refusal has its reason and line")
    weak_msg = [x.message for x in r.results if x.line == 7][0]
    tap.ok("1024" in weak_msg, "the weak key's refusal says why (%s)" % weak_msg)
    fp = hashlib.sha256(devs["1112"].spki_der()).digest()
    tap.eq([x.key_sha256 for x in r.results if x.device_id == "1112"][0], fp,
           "fingerprint = SHA-256 of the DER SPKI")
    r = register(admin, recs)
    tap.eq((r.imported, r.unchanged, r.refused), (0, 5, 0), "re-import is idempotent: 5 unchanged")
    return devs, region


def check_leaf(name, resp, dev, tmp):
    cert = x509.load_pem_x509_certificate(resp.certificate_pem.encode())
    ok, out = openssl_verify(tmp, resp.chain_pem, resp.certificate_pem,
                             extra=["-purpose", "sslclient"])
    tap.ok(ok, "%s: chain verifies with openssl verify -x509_strict -purpose sslclient" % name, out)
    certs = split_pem(resp.chain_pem)
    tap.eq(len(certs), 3, "%s: chain is issuing, intermediate, root" % name)
    tap.eq(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value, dev.id,
           "%s: CN = device id" % name)
    tap.eq(cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value,
           "WidgIoT", "%s: subject from the product line's template" % name)
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    tap.ok(bc.critical and not bc.value.ca, "%s: critical CA:FALSE" % name)
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    rsa = dev.key_type.startswith("rsa")
    tap.ok(ku.critical and ku.value.digital_signature and ku.value.key_encipherment == rsa
           and not ku.value.key_cert_sign, "%s: KU digitalSignature%s" %
           (name, " + keyEncipherment" if rsa else ""))
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    tap.eq(list(eku.value), [ExtendedKeyUsageOID.CLIENT_AUTH], "%s: EKU clientAuth only" % name)
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    tap.eq(ski.value.digest, x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest,
           "%s: SKI = SHA-1 of the key" % name)
    issuer = x509.load_pem_x509_certificate(certs[0].encode())
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    tap.eq(aki.value.key_identifier,
           issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest,
           "%s: AKI = issuer's SKI" % name)
    cdp = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints)
    ca_name = resp.ca_name
    tap.eq(cdp.value[0].full_name[0].value, "http://crl.automatra.net/%s.crl" % ca_name,
           "%s: CRL DP of the issuing CA" % name)
    aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess)
    tap.eq(sorted((d.access_method._name, d.access_location.value) for d in aia.value),
           sorted([("OCSP", "http://ocsp.automatra.net/%s" % ca_name),
                   ("caIssuers", "http://ca.automatra.net/%s.crt" % ca_name)]),
           "%s: AIA OCSP and caIssuers" % name)
    tap.eq(len(cert.extensions), 7, "%s: exactly the profile's seven extensions" % name)
    life = cert.not_valid_after - cert.not_valid_before
    tap.ok(life <= datetime.timedelta(days=365, minutes=2), "%s: validity capped at 365 days" % name)
    sn = cert.serial_number
    tap.ok(sn > 0 and sn.bit_length() > 64 and "%X" % sn == resp.serial.lstrip("0"),
           "%s: serial is > 64 random bits, uppercase hex on the wire" % name)
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    tap.eq(spki, dev.spki_der(), "%s: the certificate carries the device's key" % name)
    return cert


def test_issue(sg, iss, devs, region, tmp):
    serials = []
    for i, d in sorted(devs.items()):
        try:
            r = issue(iss, d.csr(der=(i == "1112")), region=region[i])
        except RpcError as e:
            tap.ok(False, "device %s issued" % i, e)
            continue
        tap.ok(True, "device %s (%s) issued by %s" % (i, d.key_type, r.ca_name))
        tap.eq(r.ca_name, "%s.widgiot" % region[i], "%s: the region chose the issuing CA" % i)
        check_leaf(i, r, d, tmp)
        serials.append(r.serial)
    return serials


def test_ed25519_ca(admin, iss, tmp):
    """An Ed25519 issuing CA, its key in the token (what step-ca users cannot
    have over PKCS#11): its certificates verify."""
    r = admin.call("CaAdmin", "CreateCa", A.CreateCaRequest(
        role=C.CA_ROLE_ISSUING, product_line="widgiot", region="ap-east-1",
        key_type=C.KEY_TYPE_ED25519), A.CreateCaResponse)
    cert = x509.load_pem_x509_certificate(r.ca.certificate_pem.encode())
    tap.eq(cert.public_key().__class__.__name__.startswith("_Ed25519") or
           "Ed25519" in type(cert.public_key()).__name__, True, "Ed25519 issuing CA created")
    d = Device(tmp, "4444", "ec-p256")
    register(admin, [C.DeviceKeyRecord(device_id="4444", spki_der=d.spki_der(),
                                       product_line="widgiot", region="ap-east-1")])
    r = issue(iss, d.csr(), region="ap-east-1")
    leaf = x509.load_pem_x509_certificate(r.certificate_pem.encode())
    tap.eq(leaf.signature_algorithm_oid.dotted_string, "1.3.101.112",
           "the device certificate is signed with Ed25519 by the token")
    ok, out = openssl_verify(tmp, r.chain_pem, r.certificate_pem)
    tap.ok(ok, "and its chain verifies (openssl verify -x509_strict)", out)


def test_name_constraints(admin, iss, tmp):
    """Name constraints from the request, as in the reference's configs."""
    r = admin.call("CaAdmin", "CreateCa", A.CreateCaRequest(
        role=C.CA_ROLE_ISSUING, product_line="widgiot", region="sa-east-1",
        permitted_subtrees=["DNS:.widgiot.automatra.net"],
        excluded_subtrees=["IP:0.0.0.0/0.0.0.0"]), A.CreateCaResponse)
    cert = x509.load_pem_x509_certificate(r.ca.certificate_pem.encode())
    nc = cert.extensions.get_extension_for_class(x509.NameConstraints)
    tap.ok(nc.critical and [g.value for g in nc.value.permitted_subtrees] == [".widgiot.automatra.net"]
           and [str(g.value) for g in nc.value.excluded_subtrees] == ["0.0.0.0/0"],
           "issuing CA with critical name constraints (permitted DNS, excluded IP)")
    tap.eq(list(r.ca.permitted_subtrees), ["DNS:.widgiot.automatra.net"], "and CaInfo reports them")
    d = Device(tmp, "4445", "ec-p256")
    register(admin, [C.DeviceKeyRecord(device_id="4445", spki_der=d.spki_der(),
                                       product_line="widgiot", region="sa-east-1")])
    r = issue(iss, d.csr(), region="sa-east-1")
    ok, out = openssl_verify(tmp, r.chain_pem, r.certificate_pem)
    tap.ok(ok, "a device certificate under it verifies", out)
    e = expect_error(lambda: admin.call("CaAdmin", "CreateCa", A.CreateCaRequest(
        role=C.CA_ROLE_ISSUING, product_line="widgiot", region="af-south-1",
        permitted_subtrees=["FOO:bar"]), A.CreateCaResponse), SC.INVALID_ARGUMENT)
    tap.ok(e is not None and "FOO:bar" in e.details, "a bad name constraint: INVALID_ARGUMENT naming it", e)


def test_refusals(sg, iss, admin, devs, tmp):
    d = devs["1112"]
    csr = bytearray(d.csr(der=True))
    csr[-5] ^= 0x01
    e = expect_error(lambda: issue(iss, bytes(csr)), SC.INVALID_ARGUMENT)
    tap.ok(e is not None, "CSR with a broken signature: INVALID_ARGUMENT", e)
    stranger = Device(tmp, "7777", "ec-p256")
    e = expect_error(lambda: issue(iss, stranger.csr()), SC.NOT_FOUND)
    tap.ok(e is not None and "7777" in e.details, "unregistered device: NOT_FOUND", e)
    e = expect_error(lambda: issue(iss, stranger.csr(cn="1112")), SC.PERMISSION_DENIED)
    tap.ok(e is not None, "device 1112 with another key: PERMISSION_DENIED", e)
    weak = Device(tmp, "1113w", "rsa-1024")
    e = expect_error(lambda: issue(iss, weak.csr(cn="1113")), SC.INVALID_ARGUMENT)
    tap.ok(e is not None and "1024" in e.details, "RSA-1024 CSR: INVALID_ARGUMENT", e)
    e = expect_error(lambda: issue(iss, b"\x00garbage\xff" * 10), SC.INVALID_ARGUMENT)
    tap.ok(e is not None, "garbage bytes: INVALID_ARGUMENT", e)
    e = expect_error(lambda: issue(iss, devs["1114"].csr(), region="us-east-1"), SC.PERMISSION_DENIED)
    tap.ok(e is not None and "eu-west-1" in e.details,
           "device registered for eu-west-1 enrolling in us-east-1: PERMISSION_DENIED", e)
    e = expect_error(lambda: issue(iss, d.csr(), product="gadgetx"), SC.PERMISSION_DENIED)
    tap.ok(e is not None, "another product line: PERMISSION_DENIED", e)
    roamer = Device(tmp, "1116", "ec-p256")
    register(admin, [C.DeviceKeyRecord(device_id="1116", spki_der=roamer.spki_der(),
                                       product_line="widgiot")])
    e = expect_error(lambda: issue(iss, roamer.csr(), region="ap-south-1"), SC.FAILED_PRECONDITION)
    tap.ok(e is not None and "ap-south-1" in e.details,
           "a region without an issuing CA: FAILED_PRECONDITION", e)
    r = issue(iss, roamer.csr(), region="eu-west-1")
    tap.eq(r.ca_name, "eu-west-1.widgiot", "a device registered without a region may enroll in any")
    r = issue(iss, d.csr(extra=["-addext", "basicConstraints=critical,CA:TRUE",
                                "-addext", "subjectAltName=DNS:evil.example.com",
                                "-addext", "keyUsage=keyCertSign"]))
    cert = x509.load_pem_x509_certificate(r.certificate_pem.encode())
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    tap.ok(not bc.value.ca, "CSR asking for CA:TRUE: issued, and still CA:FALSE")
    tap.ok(not any(isinstance(x.value, x509.SubjectAlternativeName) for x in cert.extensions),
           "CSR extensions are not copied (no SAN)")
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    tap.ok(not ku.value.key_cert_sign, "nor keyCertSign")
    e = expect_error(lambda: iss.call("CaAdmin", "ListCas", A.ListCasRequest(), A.ListCasResponse),
                     SC.PERMISSION_DENIED)
    tap.ok(e is not None, "admin call on the issuance socket: PERMISSION_DENIED", e)
    e = expect_error(lambda: admin.call("Signer", "Issue", S.IssueRequest(
        csr=d.csr(), product_line="widgiot", region="us-east-1"), S.IssueResponse),
        SC.PERMISSION_DENIED)
    tap.ok(e is not None, "issuance call on the admin socket: PERMISSION_DENIED", e)
    e = expect_error(lambda: iss.call("Signer", "Issue", S.IssueRequest(
        csr=d.csr(), product_line="", region=""), S.IssueResponse), SC.INVALID_ARGUMENT)
    tap.ok(e is not None, "missing product line and region: INVALID_ARGUMENT")
    e = expect_error(lambda: iss.call("Signer", "Issue", b"\x0a\xff\xff", S.IssueResponse),
                     SC.INVALID_ARGUMENT)
    tap.ok(e is not None, "a body that is not an IssueRequest: INVALID_ARGUMENT")
    tap.ok(sg.proc.poll() is None, "the signer is still running after all that")


def test_journal(sg, serials):
    db = sqlite3.connect("file:%s?mode=ro" % sg.journal, uri=True)
    rows = db.execute("SELECT serial, device_id, length(cert_der) FROM certs").fetchall()
    have = {r[0] for r in rows}
    tap.ok(all(s in have for s in serials), "a journal row for every returned certificate")
    mode = db.execute("PRAGMA journal_mode").fetchone()[0]
    tap.eq(mode, "wal", "journal is SQLite in WAL mode")
    db.close()


def test_server_cert(admin, tmp):
    key = os.path.join(tmp, "server.key")
    run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key])
    csr = subprocess.run(["openssl", "req", "-new", "-key", key, "-subj", "/CN=ignored"],
                         check=True, capture_output=True).stdout
    r = admin.call("CaAdmin", "IssueServerCertificate", A.IssueServerCertificateRequest(
        csr=csr, dns_names=["localhost", "authz.automatra.net"], ip_addresses=["127.0.0.1"]),
        A.IssueServerCertificateResponse)
    cert = x509.load_pem_x509_certificate(r.certificate_pem.encode())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    tap.eq(sorted(san.get_values_for_type(x509.DNSName)), ["authz.automatra.net", "localhost"],
           "server certificate: DNS SANs as the admin gave them")
    tap.eq([str(a) for a in san.get_values_for_type(x509.IPAddress)], ["127.0.0.1"], "and the IP SAN")
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    tap.eq(list(eku.value), [ExtendedKeyUsageOID.SERVER_AUTH], "EKU serverAuth")
    ok, out = openssl_verify(tmp, r.chain_pem, r.certificate_pem,
                             extra=["-purpose", "sslserver", "-verify_hostname", "localhost"])
    tap.ok(ok, "server certificate verifies for localhost (-purpose sslserver)", out)
    e = expect_error(lambda: admin.call("CaAdmin", "IssueServerCertificate",
                                        A.IssueServerCertificateRequest(csr=csr), A.IssueServerCertificateResponse),
                     SC.INVALID_ARGUMENT)
    tap.ok(e is not None, "server certificate without names: INVALID_ARGUMENT")


def test_bulk(sg, admin, iss, tmp, n=10000):
    """>= 10,000 issuances: unique serials, a journal row for each. One
    device per thread: the signer serialises the issuance of one device."""
    devs = [Device(tmp, "bulk-%04d" % (k + 1), "ec-p256") for k in range(8)]
    register(admin, [C.DeviceKeyRecord(device_id=d.id, spki_der=d.spki_der(),
                                       product_line="widgiot", region="us-east-1")
                     for d in devs])
    csrs = [d.csr(der=True) for d in devs]
    clients = [Client(sg.issuance) for _ in range(4)]
    t0 = time.time()

    def work(k):
        c = clients[k % 4]
        out = []
        for _ in range(n // 8):
            out.append(issue(c, csrs[k]).serial)
        return out
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        serials = [s for chunk in ex.map(work, range(8)) for s in chunk]
    dt = time.time() - t0
    tap.diag("bulk: %d issuances in %.1f s (%.0f/s, Python client, 8 threads)" % (len(serials), dt, len(serials) / dt))
    tap.eq(len(serials), n, "%d certificates issued" % n)
    tap.eq(len(set(serials)), n, "all %d serials distinct" % n)
    db = sqlite3.connect("file:%s?mode=ro" % sg.journal, uri=True)
    cnt = db.execute("SELECT count(*) FROM certs WHERE device_id LIKE 'bulk-%'").fetchone()[0]
    dup = db.execute("SELECT count(*) FROM (SELECT ca_id, serial FROM certs GROUP BY 1, 2 HAVING count(*) > 1)").fetchone()[0]
    db.close()
    tap.eq(cnt, n, "the journal holds a row for each of them")
    tap.eq(dup, 0, "no serial twice under one CA in the journal")
    for c in clients:
        c.close()


def test_reload_and_rate(sg, admin, iss, tmp):
    d = Device(tmp, "rate-0001", "ec-p256")
    register(admin, [C.DeviceKeyRecord(device_id=d.id, spki_der=d.spki_der(),
                                       product_line="widgiot", region="us-east-1")])
    sg.write_conf(device_max=3)
    sg.signal(signal.SIGHUP)
    time.sleep(0.5)
    csr = d.csr()
    got = []
    for _ in range(4):
        try:
            issue(iss, csr)
            got.append("OK")
        except RpcError as e:
            got.append(e.code.name)
    tap.eq(got, ["OK", "OK", "OK", "RESOURCE_EXHAUSTED"],
           "SIGHUP lowered the per-device cap to 3: the 4th is RESOURCE_EXHAUSTED")
    tap.ok("reloaded" in sg.log_text(), "the signer logs the reload")
    d2 = Device(tmp, "rate-0002", "ec-p256")
    register(admin, [C.DeviceKeyRecord(device_id=d2.id, spki_der=d2.spki_der(),
                                       product_line="widgiot", region="us-east-1")])
    sg.write_conf(device_max=1000, global_rate=1, global_burst=2)
    sg.signal(signal.SIGHUP)
    time.sleep(0.5)
    csr = d2.csr()
    got = []
    for _ in range(3):
        try:
            issue(iss, csr)
            got.append("OK")
        except RpcError as e:
            got.append(e.code.name + (":global" if "global" in e.details else ""))
    tap.eq(got, ["OK", "OK", "RESOURCE_EXHAUSTED:global"],
           "global cap of 2 at once (1/s): the 3rd at once is RESOURCE_EXHAUSTED, naming the global cap")
    sg.write_conf(device_max=1000, global_rate=100000, global_burst=100000)
    sg.signal(signal.SIGHUP)
    time.sleep(0.5)


def test_restart(sg, tmp, devs, region):
    rc = sg.stop()
    tap.eq(rc, 0, "SIGTERM: clean exit 0")
    tap.ok(not os.path.exists(sg.issuance[5:]) and not os.path.exists(sg.admin[5:]),
           "sockets removed on exit")
    sg.write_conf(device_max=1000)
    sg.start()
    iss = sg.issuance_client()
    try:
        r = issue(iss, devs["1113"].csr(), region=region["1113"])
        ok, out = openssl_verify(tmp, r.chain_pem, r.certificate_pem)
        tap.ok(ok, "after a restart the CAs come back from the journal and the token", out)
    except RpcError as e:
        tap.ok(False, "after a restart the CAs come back from the journal and the token", e)
    iss.close()
    st = os.stat(sg.issuance[5:])
    dst = os.stat(os.path.dirname(sg.issuance[5:]))
    tap.eq(stat.S_IMODE(st.st_mode), 0o660, "issuance socket is 0660")
    tap.eq(stat.S_IMODE(dst.st_mode), 0o750, "in a 0750 directory")


def test_rate_restart(sg, tmp):
    """The per-device limit survives a restart: the signer counts what its
    journal says it issued in the last window again."""
    sg.stop()
    sg.write_conf(device_max=3)
    sg.start()
    tap.ok(re.search(r"rate limits: \d+ device certificates of the last 3600 s counted",
                     sg.log_text()), "the signer says it counted the last window's certificates")
    admin = sg.admin_client()
    iss = sg.issuance_client()
    try:
        d = Device(tmp, "rate-0003", "ec-p256")
        register(admin, [C.DeviceKeyRecord(device_id=d.id, spki_der=d.spki_der(),
                                           product_line="widgiot", region="us-east-1")])
        csr = d.csr()
        got = []
        for _ in range(3):
            try:
                issue(iss, csr)
                got.append("OK")
            except RpcError as e:
                got.append(e.code.name)
        tap.eq(got, ["OK"] * 3, "a new device: 3 issued, up to its cap of 3")
        iss.close()
        sg.stop()
        sg.start()
        iss = sg.issuance_client()
        e = expect_error(lambda: issue(iss, csr), SC.RESOURCE_EXHAUSTED)
        tap.ok(e is not None and "rate-0003" in e.details and "at most 3 per 3600 s" in e.details,
               "after a restart the 4th is RESOURCE_EXHAUSTED, naming the device and the cap",
               e and e.details)
        tap.ok(e is not None and re.search(r"the next in (119[0-9]|1200) s", e.details),
               "and saying when the next may come (one interval, 3600 s / 3)", e and e.details)
    finally:
        admin.close()
        iss.close()
    sg.stop()
    sg.write_conf(device_max=1000)
    sg.start()


def test_external_parent(tmp):
    """The "parent issuer outside" case: the root's key is made in the token,
    its CSR signed by an outside CA (openssl), the certificate imported."""
    d = os.path.join(tmp, "ext")
    os.makedirs(d)
    tok = Token(os.path.join(d, "token"))
    sg = Signer(d, tok).start()
    admin = sg.admin_client()
    try:
        r = admin.call("CaAdmin", "CreateCa", A.CreateCaRequest(role=C.CA_ROLE_ROOT, external_parent=True),
                       A.CreateCaResponse)
        tap.eq(r.ca.state, C.CA_STATE_PENDING, "external parent: the CA is PENDING")
        tap.ok("BEGIN CERTIFICATE REQUEST" in r.csr_pem, "and its CSR is returned")
        e = expect_error(lambda: admin.call("CaAdmin", "CreateCa", A.CreateCaRequest(
            role=C.CA_ROLE_INTERMEDIATE, product_line="widgiot"), A.CreateCaResponse),
            SC.FAILED_PRECONDITION)
        tap.ok(e is not None, "no intermediate under a pending root")
        csr = os.path.join(d, "root.csr")
        with open(csr, "w") as f:
            f.write(r.csr_pem)
        ek, ec = os.path.join(d, "corp.key"), os.path.join(d, "corp.crt")
        run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", ek, "-out", ec, "-days", "30", "-subj", "/O=Corp/CN=Corp Root",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        ext = os.path.join(d, "ext.cnf")
        with open(ext, "w") as f:
            f.write("[v3]\nbasicConstraints=critical,CA:TRUE,pathlen:2\n"
                    "keyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n"
                    "authorityKeyIdentifier=keyid\n")
        signed = os.path.join(d, "root.crt")
        run(["openssl", "x509", "-req", "-in", csr, "-CA", ec, "-CAkey", ek, "-CAcreateserial",
             "-days", "20", "-extfile", ext, "-extensions", "v3", "-out", signed])
        with open(signed) as f:
            cert_pem = f.read()
        with open(ec) as f:
            corp_pem = f.read()
        e = expect_error(lambda: admin.call("CaAdmin", "ImportCaCertificate", A.ImportCaCertificateRequest(
            name="root", certificate_pem=corp_pem, chain_pem=corp_pem), C.CaInfo), SC.PERMISSION_DENIED)
        tap.ok(e is not None, "importing a certificate for another key: PERMISSION_DENIED")
        info = admin.call("CaAdmin", "ImportCaCertificate", A.ImportCaCertificateRequest(
            name="root", certificate_pem=cert_pem, chain_pem=corp_pem), C.CaInfo)
        tap.eq(info.state, C.CA_STATE_ACTIVE, "imported certificate: the CA is active")
        r = admin.call("CaAdmin", "CreateCa", A.CreateCaRequest(
            role=C.CA_ROLE_INTERMEDIATE, product_line="widgiot", product_display_name="WidgIoT Pro"),
            A.CreateCaResponse)
        tap.ok("CN=WidgIoT Pro" in r.ca.subject, "product_display_name goes into the subject (%s)" % r.ca.subject)
        admin.call("CaAdmin", "CreateCa", A.CreateCaRequest(role=C.CA_ROLE_ISSUING, product_line="widgiot",
                                                            region="us-east-1"), A.CreateCaResponse)
        dev = Device(d, "2222", "ec-p256")
        register(admin, [C.DeviceKeyRecord(device_id="2222", spki_der=dev.spki_der(),
                                           product_line="widgiot")])
        iss = sg.issuance_client()
        r = issue(iss, dev.csr())
        certs = split_pem(r.chain_pem)
        tap.eq(len(certs), 4, "chain runs up to the outside root")
        ok, out = openssl_verify(d, r.chain_pem, r.certificate_pem)
        tap.ok(ok, "device certificate verifies up to the outside root", out)
        iss.close()
    finally:
        admin.close()
        sg.stop()


def test_token_unavailable(tmp):
    """The token behind p11-kit's remote module goes away (the server is
    killed): issuance answers UNAVAILABLE without hanging or crashing, and
    works again once the token is back (the signer re-initialises)."""
    d = os.path.join(tmp, "remote")
    os.makedirs(d)
    tok = Token(os.path.join(d, "token"), label="remote")
    sock = os.path.join(d, "p11.sock")

    def server():
        p = subprocess.Popen(["p11-kit", "server", "-f", "--provider", SOFTHSM_MODULE,
                              "-n", sock, "pkcs11:token=remote"], env=tok.env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
        for _ in range(100):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        return p
    srv = server()
    client_module = "/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so"
    sg = Signer(d, tok, module=client_module,
                env={"P11_KIT_SERVER_ADDRESS": "unix:path=" + sock}).start()
    admin = sg.admin_client()
    iss = sg.issuance_client()
    try:
        build_hierarchy(admin, regions=("us-east-1",))
        dev = Device(d, "3333", "ec-p256")
        register(admin, [C.DeviceKeyRecord(device_id="3333", spki_der=dev.spki_der(),
                                           product_line="widgiot")])
        r = issue(iss, dev.csr())
        tap.ok(r.serial != "", "through p11-kit's remote module: issued")
        # p11-kit server forks a child per connection: stop them all.
        os.killpg(srv.pid, signal.SIGKILL)
        srv.wait()
        t0 = time.time()
        e = expect_error(lambda: issue(iss, dev.csr()), SC.UNAVAILABLE)
        tap.ok(e is not None, "token gone: UNAVAILABLE", e)
        tap.ok(time.time() - t0 < 10, "answered in %.1f s, no hang" % (time.time() - t0))
        tap.ok(sg.proc.poll() is None, "the signer is still running")
        srv = server()
        ok = False
        for _ in range(3):
            try:
                issue(iss, dev.csr())
                ok = True
                break
            except RpcError:
                time.sleep(0.5)
        tap.ok(ok, "token back: issuance works again (module re-initialised, logged in again)",
               sg.log_text()[-1500:])
    finally:
        iss.close()
        admin.close()
        sg.stop()
        try:
            os.killpg(srv.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        srv.wait()


def main():
    td = TempDir("sf-signer-")
    tmp = td.path
    sg = None
    try:
        test_cli_surface(tmp)
        tok = Token(os.path.join(tmp, "token"))
        # test_bulk gives each of eight devices 1,250 live certificates.
        sg = Signer(tmp, tok, device_max=20000, device_live=2000).start()
        admin = sg.admin_client()
        iss = sg.issuance_client()
        cas = test_hierarchy(sg, admin, tmp)
        test_key_attributes(sg, cas)
        devs, region = test_register(admin, tmp)
        serials = test_issue(sg, iss, devs, region, tmp)
        test_refusals(sg, iss, admin, devs, tmp)
        test_ed25519_ca(admin, iss, tmp)
        test_name_constraints(admin, iss, tmp)
        test_journal(sg, serials)
        test_server_cert(admin, tmp)
        test_bulk(sg, admin, iss, tmp, n=max(800, int(10000 * SCALE)) // 8 * 8)
        test_reload_and_rate(sg, admin, iss, tmp)
        admin.close()
        iss.close()
        test_restart(sg, tmp, devs, region)
        test_rate_restart(sg, tmp)
        test_external_parent(tmp)
        test_token_unavailable(tmp)
    except Exception as e:  # a crash in the test is a failure, not a silence
        import traceback
        tap.ok(False, "test raised %r" % e, traceback.format_exc())
        if sg:
            tap.diag(sg.log_text()[-3000:])
    finally:
        if sg:
            sg.stop()
        td.cleanup()
    return tap.done()


if __name__ == "__main__":
    sys.exit(main())
