#!/usr/bin/python3
"""CA keys bound to their certificates (real signer, SoftHSM2, pkcs11-tool,
the CLI; the test runs as the signer's uid and calls Signer.Issue straight
on the issuance socket):

- after `secretfree ca init`, every CA key in the token is sign-only,
  CKA_MODIFIABLE and CKA_COPYABLE FALSE: the token refuses to turn
  CKA_DECRYPT on (C_SetAttributeValue), to change its CKA_ID
  (pkcs11-tool --set-id) and to copy it (C_CopyObject), where it allows
  all of that on a key pkcs11-tool made;
- an issuing CA's key pair replaced with pkcs11-tool under the same label
  and id, then a restart: that CA is unavailable (log, `ca list`, `ca
  show`, --json), Signer.Issue from it is UNAVAILABLE, the other CAs
  still issue, and nothing in the journal (certificates, CRLs, OCSP
  responses) is signed by any key but the CA certificate's, background
  tasks included;
- the same on a running signer, found on SIGHUP;
- with [token] bad_key = refuse the signer does not start, naming the CA."""
import os
import signal
import sqlite3
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import grpc  # noqa: E402
import tap  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa  # noqa: E402
from cryptography.x509 import ocsp  # noqa: E402
from sfharness import (BUILD, SOFTHSM_MODULE, Cli, Device, Signer, TempDir, Token,  # noqa: E402
                       expect_error, protos, run, show)

pb = protos()
C, A, S = pb.common, pb.ca_admin, pb.signer
SC = grpc.StatusCode
TAMPER = os.environ.get("SF_TOKEN_TAMPER") or os.path.join(BUILD, "tests", "token-tamper")
EXTRA = """
[crl]
check_seconds = 1

[ocsp]
interval_seconds = 1
"""


def tamper(tok, label, *args):
    return run([TAMPER, SOFTHSM_MODULE, tok.label, tok.pin_file, label] + list(args),
               check=False, env=tok.env())


def attrs(tok, label):
    p = tamper(tok, label, "attrs")
    return dict(l.split("=", 1) for l in p.stdout.split())


def p11(tok, *args):
    return run(["pkcs11-tool", "--module", SOFTHSM_MODULE, "--token-label", tok.label,
                "--login", "--pin", tok.pin()] + list(args), check=False, env=tok.env())


def key_id(tok, label):
    """The CKA_ID (hex) of the private key labelled label, as pkcs11-tool lists it."""
    out = p11(tok, "--list-objects", "--type", "privkey").stdout
    blocks = out.split("Private Key Object")
    for b in blocks:
        lines = [l.strip() for l in b.splitlines()]
        if "label:      %s" % label in lines or any(
                l.startswith("label:") and l.split(":", 1)[1].strip() == label for l in lines):
            for l in lines:
                if l.startswith("ID:"):
                    return l.split(":", 1)[1].strip()
    return None


def replace_pair(tok, label):
    """Delete the key pair labelled label and make another under the same
    label and CKA_ID with pkcs11-tool. Returns (id, [failed steps])."""
    kid = key_id(tok, label)
    bad = []
    for args in (("--delete-object", "--type", "privkey", "--label", label),
                 ("--delete-object", "--type", "pubkey", "--label", label),
                 ("--keypairgen", "--key-type", "EC:prime256v1", "--usage-sign",
                  "--label", label, "--id", kid or "00")):
        p = p11(tok, *args)
        if p.returncode != 0:
            bad.append((args, p.stderr))
    return kid, bad


def ca_info(admin, name):
    return admin.call("CaAdmin", "GetCa", A.GetCaRequest(name=name), C.CaInfo)


def issue(cl, dev, region, n):
    return cl.call("Signer", "Issue", S.IssueRequest(
        csr=dev.csr(), product_line="widgiot", region=region, requester="test",
        enrollment_id="enr-keys-%d" % n), S.IssueResponse)


def verify_with(pub, sig, data, hash_alg):
    try:
        if isinstance(pub, ec.EllipticCurvePublicKey):
            pub.verify(sig, data, ec.ECDSA(hash_alg))
        elif isinstance(pub, rsa.RSAPublicKey):
            pub.verify(sig, data, padding.PKCS1v15(), hash_alg)
        else:
            pub.verify(sig, data)
        return True
    except Exception:  # noqa: BLE001
        return False


def journal_signed_by(journal, ca_id, pub):
    """(checked, [what does not verify with pub]) over the certificates, CRLs
    and OCSP responses the journal holds for CA ca_id."""
    def cert_ok(der):
        c = x509.load_der_x509_certificate(der)
        return verify_with(pub, c.signature, c.tbs_certificate_bytes,
                           c.signature_hash_algorithm)

    def ocsp_ok(der):
        r = ocsp.load_der_ocsp_response(der)
        return verify_with(pub, r.signature, r.tbs_response_bytes, r.signature_hash_algorithm)

    kinds = (("certificate", "SELECT serial, cert_der FROM certs WHERE ca_id = ?", cert_ok),
             ("CRL shard", "SELECT shard, der FROM crls WHERE ca_id = ?",
              lambda der: x509.load_der_x509_crl(der).is_signature_valid(pub)),
             ("OCSP response for", "SELECT serial, der FROM ocsp WHERE ca_id = ?", ocsp_ok))
    db = sqlite3.connect("file:%s?mode=ro" % journal, uri=True)
    bad, n = [], 0
    try:
        for what, sql, good in kinds:
            for key, der in db.execute(sql, (ca_id,)):
                n += 1
                if not good(der):
                    bad.append("%s %s" % (what, key))
        return n, bad
    finally:
        db.close()


def ca_id_of(journal, name):
    db = sqlite3.connect("file:%s?mode=ro" % journal, uri=True)
    try:
        return db.execute("SELECT id FROM cas WHERE name = ?", (name,)).fetchone()[0]
    finally:
        db.close()


def wait_log(d, text, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if text in d.log_text():
            return True
        time.sleep(0.1)
    return False


def test_attributes(tok, labels):
    for label in labels:
        a = attrs(tok, label)
        tap.ok(a.get("CKA_MODIFIABLE") == "FALSE" and a.get("CKA_COPYABLE") == "FALSE" and
               a.get("CKA_DECRYPT") == "FALSE" and a.get("CKA_SIGN") == "TRUE",
               "%s: sign-only, CKA_MODIFIABLE and CKA_COPYABLE FALSE" % label, a)
    label = labels[-1]
    p = tamper(tok, label, "set", "CKA_DECRYPT=TRUE")
    tap.ok(p.returncode == 1 and "CKR_ACTION_PROHIBITED" in p.stdout,
           "%s: the token refuses to set CKA_DECRYPT (C_SetAttributeValue)" % label, show(p))
    p = tamper(tok, label, "set", "CKA_MODIFIABLE=TRUE")
    tap.ok(p.returncode == 1, "  and to make it modifiable again", show(p))
    p = tamper(tok, label, "copy")
    tap.ok(p.returncode == 1 and "CKR_ACTION_PROHIBITED" in p.stdout,
           "  and to copy it (C_CopyObject)", show(p))
    p = p11(tok, "--type", "privkey", "--label", label, "--set-id", "77")
    tap.ok(p.returncode != 0, "  pkcs11-tool --set-id: refused", show(p))
    tap.eq(attrs(tok, label).get("CKA_DECRYPT"), "FALSE", "  CKA_DECRYPT is still FALSE")

    p11(tok, "--keypairgen", "--key-type", "EC:prime256v1", "--label", "control",
        "--id", "99")
    a = attrs(tok, "control")
    tap.ok(a.get("CKA_MODIFIABLE") == "TRUE" and a.get("CKA_DECRYPT") == "TRUE",
           "control: a key pkcs11-tool makes is modifiable and may decrypt", a)
    p = tamper(tok, "control", "set", "CKA_DERIVE=FALSE")
    tap.ok(p.returncode == 0 and attrs(tok, "control").get("CKA_DERIVE") == "FALSE",
           "  and there the token lets its attributes be set", show(p))


def main():
    td = TempDir("sf-cakeys-")
    signer = None
    try:
        tok = Token(os.path.join(td.path, "token"))
        signer = Signer(td.path, tok, extra=EXTRA).start()
        cli = Cli(td.path, {"SECRETFREE_SIGNER": signer.admin})
        p = cli("ca", "init", "--product-line", "widgiot", "--region", "us-east-1",
                "--region", "eu-west-1")
        tap.ok(p.returncode == 0, "secretfree ca init: root, widgiot, us-east-1, eu-west-1",
               show(p))
        admin = signer.admin_client()
        cas = {n: ca_info(admin, n) for n in ("root", "widgiot", "us-east-1.widgiot",
                                             "eu-west-1.widgiot")}
        tap.ok(all(c.unavailable == "" for c in cas.values()), "every CA is available",
               {n: c.unavailable for n, c in cas.items()})
        test_attributes(tok, [c.key_label for c in cas.values()])

        devs = [Device(td.path, "k%d" % i) for i in range(4)]
        recs = [C.DeviceKeyRecord(device_id=d.id, spki_der=d.spki_der(), product_line="widgiot",
                                  region=r, line=i + 1)
                for i, (d, r) in enumerate(zip(devs, ("us-east-1", "eu-west-1",
                                                       "us-east-1", "eu-west-1")))]
        admin.call("CaAdmin", "RegisterDeviceKeys", A.RegisterDeviceKeysRequest(records=recs),
                   C.ImportResult)
        iss = signer.issuance_client()
        r = issue(iss, devs[0], "us-east-1", 0)
        tap.ok(r.serial != "", "us-east-1.widgiot issues")
        time.sleep(2.5)   # a CRL and the OCSP responses of what it issued

        # Replaced while stopped, found at the restart.
        east = cas["us-east-1.widgiot"]
        east_id = ca_id_of(signer.journal, east.name)
        east_pub = x509.load_pem_x509_certificate(east.certificate_pem.encode()).public_key()
        n0, bad = journal_signed_by(signer.journal, east_id, east_pub)
        tap.ok(n0 >= 3 and not bad, "before: %d objects of us-east-1 in the journal, all signed"
               " by its certificate's key" % n0, bad)
        tap.eq(signer.stop(), 0, "stop the signer")
        kid, bad = replace_pair(tok, east.key_label)
        tap.ok(kid and not bad, "pkcs11-tool replaces %s's key pair under the same label and"
               " id (%s)" % (east.name, kid), bad)
        signer.start()
        tap.ok(wait_log(signer, "CA us-east-1.widgiot %s is unavailable" % east.generation),
               "the restarted signer logs us-east-1.widgiot as unavailable", signer.log_text())
        tap.ok("is not the one its certificate" in signer.log_text(),
               "  because the key under its label is not its certificate's")
        admin = signer.admin_client()
        iss = signer.issuance_client()
        info = ca_info(admin, east.name)
        tap.ok("is not the one its certificate" in info.unavailable,
               "CaInfo.unavailable says why", info.unavailable)
        tap.eq(ca_info(admin, "eu-west-1.widgiot").unavailable, "", "eu-west-1 stays available")
        p = cli("ca", "list")
        row = [l for l in p.stdout.splitlines() if l.startswith("us-east-1.widgiot")]
        tap.ok(p.returncode == 0 and row and "unavailable" in row[0],
               "ca list: WARNING unavailable on its row", show(p))
        tap.ok("us-east-1.widgiot generation %s is unavailable" % east.generation in p.stderr,
               "  and a line on standard error", show(p))
        p = cli("ca", "show", east.name)
        tap.ok(p.returncode == 0 and "unavailable" in p.stdout and
               "is not the one its certificate" in p.stdout, "ca show: unavailable, and why",
               show(p))
        p = cli("--json", "ca", "show", "eu-west-1.widgiot")
        tap.ok(p.returncode == 0 and '"unavailable": null' in p.stdout,
               "ca show --json: unavailable is null for a CA that can sign", show(p))
        e = expect_error(lambda: issue(iss, devs[2], "us-east-1", 1), SC.UNAVAILABLE)
        tap.ok(e is not None and "unavailable" in e.details and "us-east-1" in e.details,
               "Signer.Issue from it: UNAVAILABLE, naming the CA", e)
        r = issue(iss, devs[1], "eu-west-1", 2)
        tap.ok(r.serial != "", "eu-west-1.widgiot still issues")
        time.sleep(2.5)   # the CRL and OCSP tasks run
        n1, bad = journal_signed_by(signer.journal, east_id, east_pub)
        tap.ok(n1 == n0 and not bad, "nothing new for us-east-1 in the journal (%d objects),"
               " and all signed by its certificate's key" % n1, bad)

        # Replaced while running, found on SIGHUP.
        west = cas["eu-west-1.widgiot"]
        kid, bad = replace_pair(tok, west.key_label)
        tap.ok(kid and not bad, "eu-west-1's key pair replaced while the signer runs", bad)
        signer.signal(signal.SIGHUP)
        tap.ok(wait_log(signer, "CA eu-west-1.widgiot %s is unavailable" % west.generation),
               "SIGHUP: the signer finds it and logs eu-west-1.widgiot unavailable",
               signer.log_text())
        e = expect_error(lambda: issue(iss, devs[3], "eu-west-1", 3), SC.UNAVAILABLE)
        tap.ok(e is not None, "Signer.Issue from eu-west-1: UNAVAILABLE", e)
        west_pub = x509.load_pem_x509_certificate(west.certificate_pem.encode()).public_key()
        n, bad = journal_signed_by(signer.journal, ca_id_of(signer.journal, west.name),
                                   west_pub)
        tap.ok(n > 0 and not bad, "eu-west-1's %d journal objects: all signed by its"
               " certificate's key" % n, bad)
        tap.eq(ca_info(admin, "widgiot").unavailable, "", "the intermediate stays available")
        tap.eq(signer.stop(), 0, "stop the signer")

        # bad_key = refuse
        with open(signer.conf_path) as f:
            text = f.read()
        with open(signer.conf_path, "w") as f:
            f.write(text.replace("sessions = 4\n", "sessions = 4\nbad_key = refuse\n"))
        try:
            signer.start()
            started = True
        except RuntimeError:
            started = False
        tap.ok(not started and signer.proc.returncode == 1,
               "[token] bad_key = refuse: the signer does not start (exit 1)")
        line = [l for l in signer.log_text().splitlines() if "bad_key = refuse" in l]
        tap.ok(line and "CA us-east-1.widgiot" in line[-1] and "cannot sign" in line[-1],
               "  and its log names the CA and why", line)
        signer.proc = None
        signer.log.close()
    except Exception as e:  # noqa: BLE001
        import traceback
        tap.ok(False, "test raised %r" % e, traceback.format_exc())
    finally:
        if signer:
            signer.stop()
        td.cleanup()
    tap.done()


if __name__ == "__main__":
    main()
