#!/usr/bin/python3
"""The secretfree CLI against the real signer and authz (SoftHSM2 tokens,
temporary sockets, TLS on loopback): the CA hierarchy (ca init twice, ca
create with an outside parent made by openssl, chains checked with
`openssl verify`), authz's TLS certificate from `ca issue-server`, factory
imports of CSV, JSONL and a directory of PEM keys with bad records in the
middle, the devices, enrollment with a PEM key and with a key in a separate
SoftHSM2 "device" token through libp11's engine, chunked retrieval, every
refusal with its exit code and message, --json output, targets from flags,
environment and configuration file, and every --help."""
import json
import os
import stat
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import tap  # noqa: E402
from sfharness import (BUILD, SOFTHSM_MODULE, Authz, Device, Signer,  # noqa: E402
                       TempDir, Token, protos, run, split_pem)

from cryptography import x509  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

pb = protos()
C, A, R = pb.common, pb.ca_admin, pb.registry

CLI = os.environ.get("SF_CLI") or os.path.join(BUILD, "client", "secretfree")
TARGET_ENV = ("SECRETFREE_SIGNER", "SECRETFREE_AUTHZ", "SECRETFREE_ENDPOINT",
              "SECRETFREE_CONFIG")

EXTRA_PRODUCT = """
[product.gizmo]
display_name = Gizmo
device_validity_days = 365
"""


class Cli:
    """Runs the CLI with a clean environment plus the targets given."""

    def __init__(self, tmp):
        self.env = {k: v for k, v in os.environ.items() if k not in TARGET_ENV}
        # No configuration file of the user running the tests.
        self.env["HOME"] = tmp
        self.env.pop("XDG_CONFIG_HOME", None)

    def __call__(self, *args, env=None, input=None, timeout=120):
        e = dict(self.env)
        e.update(env or {})
        return subprocess.run([CLI] + [str(a) for a in args], capture_output=True,
                              text=True, env=e, input=input, timeout=timeout)


def show(p):
    return "rc=%d\nstdout:\n%s\nstderr:\n%s" % (p.returncode, p.stdout, p.stderr)


def expect(p, rc, what, *needles, stream="stderr"):
    text = p.stdout if stream == "stdout" else p.stderr
    ok = p.returncode == rc and all(n in text for n in needles)
    return tap.ok(ok, what, show(p))


def jload(p):
    try:
        return json.loads(p.stdout)
    except ValueError:
        return None


def write(path, text, mode=0o644):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def verify(tmp, root_pem_file, chain_pem, leaf_pem, extra=()):
    untrusted = write(os.path.join(tmp, "v-untrusted.pem"), chain_pem)
    leaf = write(os.path.join(tmp, "v-leaf.pem"), leaf_pem)
    p = run(["openssl", "verify", "-x509_strict", "-CAfile", root_pem_file,
             "-untrusted", untrusted] + list(extra) + [leaf], check=False)
    return p.returncode == 0, p.stdout + p.stderr


# ---------------------------------------------------------------- the CAs

def test_ca(cli, tmp):
    p = cli("ca", "init", "--product-line", "widgiot", "--display-name", "WidgIoT",
            "--region", "us-east-1", "--region", "eu-west-1")
    rows = [l.split() for l in p.stdout.splitlines()[1:]]
    tap.ok(p.returncode == 0 and [r[0] for r in rows] ==
           ["root", "widgiot", "us-east-1.widgiot", "eu-west-1.widgiot"]
           and all(r[3] == "created" and r[2] == "active" for r in rows),
           "ca init: root, intermediate and two issuing CAs created", show(p))
    p = cli("ca", "init", "--product-line", "widgiot", "--region", "us-east-1",
            "--region", "eu-west-1")
    rows = [l.split() for l in p.stdout.splitlines()[1:]]
    tap.ok(p.returncode == 0 and len(rows) == 4 and all(r[3] == "existing" for r in rows),
           "ca init again: idempotent, every CA reported as existing", show(p))
    p = cli("--json", "ca", "init", "--product-line", "widgiot", "--region", "us-east-1")
    j = jload(p)
    tap.ok(p.returncode == 0 and j and [(c["name"], c["result"]) for c in j["cas"]] ==
           [("root", "existing"), ("widgiot", "existing"), ("us-east-1.widgiot", "existing")],
           "ca init --json: parsed, results per CA", show(p))

    p = cli("ca", "list")
    names = [l.split()[0] for l in p.stdout.splitlines()[1:]]
    tap.ok(p.returncode == 0 and p.stdout.startswith("NAME") and
           set(names) == {"root", "widgiot", "us-east-1.widgiot", "eu-west-1.widgiot"},
           "ca list: a table of the four CAs", show(p))
    p = cli("--json", "ca", "list", "--region", "eu-west-1")
    j = jload(p)
    tap.ok(p.returncode == 0 and j and [c["name"] for c in j["cas"]] == ["eu-west-1.widgiot"]
           and j["cas"][0]["role"] == "issuing" and j["cas"][0]["parent"] == "widgiot",
           "ca list --json --region: only that region's issuing CA", show(p))
    p = cli("ca", "show", "us-east-1.widgiot")
    tap.ok(p.returncode == 0 and "role:             issuing" in p.stdout and
           "state:            active" in p.stdout and "key uri:" in p.stdout and
           "pkcs11:" in p.stdout and "path length:      0" in p.stdout,
           "ca show: role, state, key URI, path length", show(p))
    p = cli("--json", "ca", "show", "root")
    j = jload(p)
    tap.ok(p.returncode == 0 and j and j["role"] == "root" and j["key_type"] == "ec-p384"
           and "BEGIN CERTIFICATE" in j["certificate_pem"],
           "ca show --json: the root, ec-p384, with its certificate", show(p))
    expect(cli("ca", "show", "nope"), 3, "ca show of an unknown CA: exit 3",
           "no CA named nope", "(NOT_FOUND)")

    root = os.path.join(tmp, "root.pem")
    chain = os.path.join(tmp, "us-chain.pem")
    p = cli("ca", "chain", "root", "--out", root)
    tap.ok(p.returncode == 0 and len(split_pem(open(root).read())) == 1,
           "ca chain root --out: the root certificate", show(p))
    p = cli("ca", "chain", "us-east-1.widgiot", "--out", chain)
    certs = split_pem(open(chain).read()) if p.returncode == 0 else []
    tap.ok(len(certs) == 3 and "us-east-1.widgiot <- widgiot <- root" in p.stdout,
           "ca chain: issuing CA first, root last", show(p))
    ok, out = verify(tmp, root, certs[1] if certs else "", certs[0] if certs else "")
    tap.ok(ok, "openssl verify: the issuing CA's chain verifies up to the root", out)
    p = cli("ca", "chain", "eu-west-1.widgiot")
    tap.ok(p.returncode == 0 and p.stdout.count("BEGIN CERTIFICATE") == 3,
           "ca chain without --out: PEM on standard output", show(p))
    return root


def test_external(cli, tmp, root):
    """A product line whose intermediate is signed by an outside CA."""
    csr = os.path.join(tmp, "gizmo.csr")
    p = cli("ca", "create", "intermediate", "--product-line", "gizmo", "--external",
            "--csr-out", csr, "--path-len", "1")
    tap.ok(p.returncode == 0 and "state:            pending" in p.stdout and
           "ca import-cert gizmo" in p.stdout and "BEGIN CERTIFICATE REQUEST" in open(csr).read(),
           "ca create intermediate --external: pending, CSR written", show(p))
    v = run(["openssl", "req", "-in", csr, "-noout", "-verify"], check=False)
    tap.ok(v.returncode == 0, "the CSR's self-signature verifies (openssl req -verify)",
           v.stdout + v.stderr)
    expect(cli("ca", "create", "intermediate", "--product-line", "gizmo", "--external"), 8,
           "the same CA again: ALREADY_EXISTS, exit 8", "already exists", "(ALREADY_EXISTS)")
    expect(cli("ca", "create", "issuing", "--product-line", "gizmo", "--region", "us-east-1"),
           8, "an issuing CA under a pending intermediate: FAILED_PRECONDITION, exit 8",
           "(FAILED_PRECONDITION)")
    csr2 = os.path.join(tmp, "gizmo2.csr")
    p = cli("ca", "csr", "gizmo", "--out", csr2)
    v = run(["openssl", "req", "-in", csr2, "-noout", "-verify", "-subject"], check=False)
    tap.ok(p.returncode == 0 and v.returncode == 0 and "Gizmo" in v.stdout,
           "ca csr: another CSR for the pending key, signed in the token", show(p) + v.stderr)

    # The outside CA, made by openssl, with keyUsage.
    okey = os.path.join(tmp, "outside.key")
    oroot = os.path.join(tmp, "outside.pem")
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", okey, "-subj", "/O=Outside/CN=Outside Root CA", "-days", "3650",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", oroot])
    ext = write(os.path.join(tmp, "ext.cnf"),
                "[v3]\nbasicConstraints=critical,CA:TRUE,pathlen:1\n"
                "keyUsage=critical,keyCertSign,cRLSign\n"
                "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid:always\n")
    gcrt = os.path.join(tmp, "gizmo.crt")
    run(["openssl", "x509", "-req", "-in", csr, "-CA", oroot, "-CAkey", okey,
         "-CAcreateserial", "-days", "1825", "-extfile", ext, "-extensions", "v3",
         "-out", gcrt])
    expect(cli("ca", "import-cert", "gizmo", "--cert", oroot, "--chain", oroot), 4,
           "import-cert of a certificate for another key: PERMISSION_DENIED, exit 4",
           "not for the key", "(PERMISSION_DENIED)")
    expect(cli("ca", "import-cert", "gizmo", "--cert", gcrt, "--chain",
               os.path.join(tmp, "missing.pem")), 5,
           "import-cert with an unreadable chain file: exit 5", "missing.pem")
    p = cli("ca", "import-cert", "gizmo", "--cert", gcrt, "--chain", oroot)
    tap.ok(p.returncode == 0 and "state:            active" in p.stdout and
           "(external)" in p.stdout, "ca import-cert: the outside parent's certificate, active",
           show(p))
    expect(cli("ca", "import-cert", "gizmo", "--cert", gcrt, "--chain", oroot), 8,
           "import-cert again: not pending any more, exit 8", "(FAILED_PRECONDITION)")
    p = cli("ca", "create", "issuing", "--product-line", "gizmo", "--region", "us-east-1",
            "--key-type", "ec-p256", "--validity-days", "900")
    tap.ok(p.returncode == 0 and "name:             us-east-1.gizmo" in p.stdout,
           "ca create issuing under the imported intermediate", show(p))
    chain = os.path.join(tmp, "gizmo-chain.pem")
    p = cli("ca", "chain", "us-east-1.gizmo", "--out", chain)
    certs = split_pem(open(chain).read()) if p.returncode == 0 else []
    ok, out = verify(tmp, oroot, "".join(certs[1:]), certs[0] if certs else "")
    tap.ok(ok, "openssl verify: us-east-1.gizmo chains up to the outside root", show(p) + out)
    expect(cli("ca", "create", "issuing", "--product-line", "gizmo"), 2,
           "ca create issuing without --region: usage error, exit 2", "--region")
    expect(cli("ca", "create", "root", "--key-type", "dsa"), 2,
           "an unknown key type: usage error, exit 2", "ec-p256")


def test_issue_server(cli, tmp, root):
    key = os.path.join(tmp, "authz.key")
    crt = os.path.join(tmp, "authz.crt")
    p = cli("ca", "issue-server", "--dns", "localhost", "--ip", "127.0.0.1", "--key", key,
            "--generate-key", "--out", crt)
    mode = stat.S_IMODE(os.stat(key).st_mode) if os.path.exists(key) else None
    tap.ok(p.returncode == 0 and mode == 0o600 and "serial:" in p.stdout,
           "ca issue-server --generate-key: key made with mode 0600, certificate issued",
           show(p))
    before = open(key).read()
    p = cli("ca", "issue-server", "--dns", "localhost", "--key", key, "--generate-key",
            "--out", os.path.join(tmp, "other.crt"))
    tap.ok(p.returncode == 8 and "File exists" in p.stderr and open(key).read() == before,
           "--generate-key never overwrites a key: exit 8, key untouched", show(p))
    certs = split_pem(open(crt).read())
    ok, out = verify(tmp, root, "".join(certs[1:]), certs[0],
                     extra=["-purpose", "sslserver", "-verify_hostname", "localhost"])
    tap.ok(len(certs) == 4 and ok,
           "the server certificate (with its chain) verifies for localhost, serverAuth", out)
    crt2 = os.path.join(tmp, "authz2.crt")
    chain2 = os.path.join(tmp, "authz2-chain.pem")
    p = cli("--json", "ca", "issue-server", "--dns", "mqtt.example.net", "--key", key,
            "--out", crt2, "--chain-out", chain2, "--ca", "eu-west-1.widgiot", "--days", "30")
    j = jload(p)
    tap.ok(p.returncode == 0 and j and len(split_pem(open(crt2).read())) == 1 and
           len(split_pem(open(chain2).read())) == 3 and j["serial"],
           "issue-server --chain-out --ca --days --json: certificate and chain apart", show(p))
    expect(cli("ca", "issue-server", "--dns", "x", "--key", key, "--out", crt2, "--days",
               "9999"), 5, "a validity over the server profile's cap: exit 5",
           "(INVALID_ARGUMENT)")
    expect(cli("ca", "issue-server", "--key", key, "--out", crt2), 2,
           "issue-server without --dns or --ip: usage error, exit 2", "--dns")
    return key, crt


# ---------------------------------------------------------------- import

def pem_of(d):
    return open(d.pub).read()


def der_b64(d):
    import base64
    return base64.b64encode(d.spki_der()).decode()


def test_import(cli, tmp, sg, az):
    ddir = os.path.join(tmp, "devices")
    os.makedirs(ddir)
    devs = {i: Device(ddir, i, "ec-p256") for i in
            ("1111", "1112", "1113", "1114", "1115", "2001", "2002", "2003")}
    devs["1113"] = Device(ddir, "1113", "rsa-2048")
    other = Device(ddir, "other", "ec-p256")
    weak = Device(ddir, "weak", "rsa-1024")

    # CSV: a header, PEM keys in quoted multi-line fields, base64 DER, a
    # malformed line and conflicting records in the middle.
    csv = os.path.join(tmp, "devices.csv")
    lines = ["device_id,public_key,product_line,region",
             '1111,"%s",widgiot,us-east-1' % pem_of(devs["1111"]).strip(),
             "1112,%s,widgiot,us-east-1" % der_b64(devs["1112"]),
             "this line is not a record",
             '1111,"%s",widgiot,us-east-1' % pem_of(other).strip(),
             "7777,%s,widgiot,us-east-1" % der_b64(devs["1112"]),
             "1113,%s,,us-east-1" % der_b64(devs["1113"])]
    write(csv, "\n".join(lines) + "\n")
    # Line numbers: 1111 spans lines 2-5 (a 4-line PEM), 1112 is 6, the bad
    # line 7, the conflicting 1111 lines 8-11, 7777 line 12, 1113 line 13.
    p = cli("device", "import", csv, "--product-line", "widgiot")
    tap.ok(p.returncode == 9 and p.stdout.strip() == "imported 3, unchanged 0, refused 3",
           "CSV import: 3 imported, 3 refused, exit 9", show(p))
    err = p.stderr.splitlines()
    tap.ok(any(l.startswith(csv + ":7: ") and l.endswith("(file)") for l in err),
           "the malformed line reported with its line number, by the reader", p.stderr)
    tap.ok(csv + ":8: device 1111: registered with another key (signer)" in err,
           "a known id with another key: its line and the signer's reason", p.stderr)
    tap.ok(csv + ":12: device 7777: its key is registered under another device id (signer)"
           in err, "a known key under another id: its line and reason", p.stderr)
    tap.eq([l[len(csv) + 1:].split(":")[0] for l in err], ["7", "8", "12"],
           "one stderr line per refused record, in file order, nothing else")

    p = cli("--json", "device", "import", csv, "--product-line", "widgiot")
    j = jload(p)
    tap.ok(p.returncode == 9 and j and (j["imported"], j["unchanged"], j["refused"]) == (0, 3, 3)
           and j["complete"] and [(r["line"], r["by"]) for r in j["refusals"]] ==
           [(7, "file"), (8, "signer"), (12, "signer")] and
           j["refusals"][1]["reason"] == "id-has-other-key" and j["format"] == "csv",
           "re-import --json: idempotent (3 unchanged), refusals with line, reason and who",
           show(p))

    p = cli("device", "import", "-", "--format", "csv", "--product-line", "widgiot",
            input="1111,%s,,us-east-1\nbad line\n" % der_b64(devs["1111"]))
    tap.ok(p.returncode == 9 and p.stdout.strip() == "imported 0, unchanged 1, refused 1",
           "import from standard input (- --format csv)", show(p))

    # JSONL with a malformed line, a weak key and a region; ids 1114/1115.
    jl = os.path.join(tmp, "devices.jsonl")
    recs = [json.dumps({"device_id": "1114", "public_key": pem_of(devs["1114"]),
                        "region": "eu-west-1"}),
            "{not json",
            json.dumps({"device_id": "weak", "public_key": pem_of(weak)}),
            json.dumps({"device_id": "1115", "public_key": der_b64(devs["1115"]),
                        "product_line": "widgiot", "region": "eu-west-1"}),
            json.dumps({"device_id": "-bad", "public_key": pem_of(other)})]
    write(jl, "\n".join(recs) + "\n")
    p = cli("device", "import", jl, "--dry-run", "--product-line", "widgiot")
    tap.ok(p.returncode == 9 and "dry run: 2 valid, refused 3 (nothing sent)" in p.stdout,
           "JSONL --dry-run: checked here, nothing sent", show(p))
    p = cli("device", "import", jl, "--product-line", "widgiot", "--batch", "2")
    err = p.stderr.splitlines()
    tap.ok(p.returncode == 9 and p.stdout.strip() == "imported 2, unchanged 0, refused 3"
           and any(l.startswith(jl + ":2: ") for l in err)
           and any(l.startswith(jl + ":3: device weak: ") for l in err)
           and any(l.startswith(jl + ":5: device -bad: ") for l in err),
           "JSONL import in batches of 2: 2 imported, 3 refused with their lines", show(p))
    tap.eq([l[len(jl) + 1:].split(":")[0] for l in err], ["2", "3", "5"],
           "batches of 2 (the next one read while one is sent): refusals in file order")

    # The pipeline's failures, batches of 1: authz unreachable stops the import at the
    # first batch (the signer may have taken the next one: harmless, re-run completes it),
    # with one error and one hint; the signer unreachable likewise, and authz is not
    # called.
    nowhere = "unix:" + os.path.join(tmp, "nowhere.sock")
    p = cli("--authz", nowhere, "device", "import", csv, "--product-line", "widgiot",
            "--batch", "1")
    tap.ok(p.returncode == 6 and p.stderr.count("(UNAVAILABLE)") == 1
           and p.stderr.count("hint: is authz running?") == 1
           and "stopped after 1 records: imported 0, unchanged 0, refused 0" in p.stderr,
           "import with authz unreachable: stops at the first batch, one error, exit 6",
           show(p))
    p = cli("--signer", nowhere, "device", "import", csv, "--product-line", "widgiot",
            "--batch", "1")
    tap.ok(p.returncode == 6 and p.stderr.count("(UNAVAILABLE)") == 1
           and p.stderr.count("hint: is the signer running?") == 1
           and "stopped after 1 records" in p.stderr,
           "import with the signer unreachable: one error, exit 6", show(p))
    p = cli("device", "import", csv, "--product-line", "widgiot", "--batch", "1")
    tap.ok(p.returncode == 9 and p.stdout.strip() == "imported 0, unchanged 3, refused 3",
           "after both: a re-run finds everything in place", show(p))

    # A directory of PEM keys, one of them not a key.
    kdir = os.path.join(tmp, "keys")
    os.makedirs(kdir)
    for i in ("2001", "2002", "2003"):
        write(os.path.join(kdir, i + ".pem"), pem_of(devs[i]))
    write(os.path.join(kdir, "2004.pem"), "-----BEGIN PUBLIC KEY-----\nAAAA\n"
          "-----END PUBLIC KEY-----\n")
    # 2003's key under 2003 is also in authz only, with another key: authz refuses.
    aadmin = az.admin_client()
    aadmin.call("Registry", "ImportDevices", R.ImportDevicesRequest(records=[
        C.DeviceKeyRecord(device_id="2003", spki_der=other.spki_der(),
                          product_line="widgiot")]), C.ImportResult)
    p = cli("device", "import", kdir, "--product-line", "widgiot", "--region", "us-east-1")
    err = p.stderr.splitlines()
    tap.ok(p.returncode == 9 and p.stdout.strip() == "imported 2, unchanged 0, refused 2",
           "dir import: 2 imported, 2 refused", show(p))
    tap.ok(any(l.startswith(os.path.join(kdir, "2004.pem")) and "(file)" in l for l in err),
           "the file that is not a key is named", p.stderr)
    tap.ok(any("device 2003: registered with another key (authz)" in l for l in err),
           "a record the signer took but authz refused: reported as authz's", p.stderr)

    # The good records are in both places.
    sadmin = sg.admin_client()
    good = ["1111", "1112", "1114", "1115", "2001", "2002"]
    s = sadmin.call("CaAdmin", "RegisterDeviceKeys", A.RegisterDeviceKeysRequest(records=[
        C.DeviceKeyRecord(device_id=i, spki_der=devs[i].spki_der(), product_line="widgiot",
                          region="eu-west-1" if i in ("1114", "1115") else "us-east-1")
        for i in good]), C.ImportResult)
    tap.eq([r.outcome for r in s.results], [C.RECORD_OUTCOME_UNCHANGED] * len(good),
           "the signer has every good record (a repeat is unchanged)")
    p = cli("--json", "device", "list", "--limit", "1000")
    j = jload(p)
    ids = sorted(d["device_id"] for d in j["devices"]) if j else []
    tap.ok(p.returncode == 0 and set(good) <= set(ids) and "7777" not in ids
           and "weak" not in ids, "authz has every good record, none of the refused", show(p))
    aadmin.close()
    sadmin.close()
    return devs


# ---------------------------------------------------------------- devices

def test_devices(cli):
    p = cli("device", "list", "--state", "registered", "--product-line", "widgiot")
    rows = [l.split() for l in p.stdout.splitlines()]
    tap.ok(p.returncode == 0 and rows and rows[0][0] == "DEVICE" and
           any(r[0] == "1111" and r[3] == "registered" for r in rows[1:]),
           "device list --state registered: a table with 1111", show(p))
    p = cli("device", "list", "--region", "eu-west-1", "--limit", "1")
    tap.ok(p.returncode == 0 and len(p.stdout.splitlines()) == 2 and "1114" in p.stdout,
           "device list --region --limit 1: one row", show(p))
    p = cli("device", "show", "1111")
    tap.ok(p.returncode == 0 and "state:            registered" in p.stdout and
           "key type:         ec-p256" in p.stdout and "no certificates yet" in p.stdout,
           "device show before enrollment: registered, key type, no certificates", show(p))
    expect(cli("device", "show", "4242"), 3, "device show of an unknown device: exit 3",
           "not registered", "(NOT_FOUND)")
    expect(cli("device", "list", "--state", "bogus"), 2,
           "device list --state bogus: usage error, exit 2",
           "registered, active, disabled or revoked")


# ---------------------------------------------------------------- enrollment

def test_enroll(cli, tmp, sg, az, devs, root):
    ep = ["--endpoint", az.device, "--ca-file", root]
    crt = os.path.join(tmp, "1111.crt")
    ch = os.path.join(tmp, "1111-chain.pem")
    p = cli("enroll", "--id", "1111", "--key", devs["1111"].key, *ep, "--out", crt,
            "--chain-out", ch)
    tap.ok(p.returncode == 0 and "serial:" in p.stdout and "enrollment id:    enr-" in p.stdout
           and "issuing CA:" in p.stdout and "us-east-1.widgiot.automatra.net" in p.stdout
           and "valid:" in p.stdout, "enroll with a PEM key over TLS: serial, enrollment id,"
           " issuing CA, validity", show(p))
    ok, out = verify(tmp, root, open(ch).read(), open(crt).read() if os.path.exists(crt) else "",
                     extra=["-purpose", "sslclient"])
    tap.ok(ok, "openssl verify: the device certificate and its chain, clientAuth", out)
    serial = [l.split()[1] for l in p.stdout.splitlines() if l.startswith("serial:")]
    serial = serial[0] if serial else ""
    cert = x509.load_pem_x509_certificate(open(crt, "rb").read())
    tap.eq(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value, "1111",
           "the certificate's CN is the device id")

    p = cli("--json", "enroll", "--id", "1112", "--key", devs["1112"].key, *ep,
            "--chunk-size", "100", "--idempotency-key", "boot-1")
    j = jload(p)
    tap.ok(p.returncode == 0 and j and j["fetch"]["sha256_ok"] and j["fetch"]["chunks"] > 5
           and j["fetch"]["bytes"] == j["bundle_length"] and not j["replayed"],
           "enroll --chunk-size 100 --json: bundle fetched in %s chunks, SHA-256 checked"
           % (j["fetch"]["chunks"] if j else "?"), show(p))
    p2 = cli("--json", "enroll", "--id", "1112", "--key", devs["1112"].key, *ep,
             "--idempotency-key", "boot-1")
    j2 = jload(p2)
    tap.ok(j and j2 and j2["replayed"] and j2["serial"] == j["serial"],
           "the same idempotency key: the same certificate, replayed", show(p2))
    p = cli("enroll", "--id", "1112", "--key", devs["1112"].key, *ep, "--chunk-size", "100")
    tap.ok(p.returncode == 0 and "SHA-256" in p.stderr and "matches" in p.stderr
           and p.stdout.count("BEGIN CERTIFICATE") == 4,
           "without --out: certificate and chain on stdout, details on stderr", show(p))
    csr = os.path.join(tmp, "1114.csr")
    p = cli("enroll", "--id", "1114", "--key", devs["1114"].key, "--csr-out", csr)
    v = run(["openssl", "req", "-in", csr, "-noout", "-verify", "-subject"], check=False)
    tap.ok(p.returncode == 0 and v.returncode == 0 and "CN = 1114" in v.stdout,
           "enroll --csr-out: only the CSR, CN = device id", show(p) + v.stderr)

    # A key in a separate SoftHSM2 token, as a device's secure element.
    tdir = os.path.join(tmp, "devtoken")
    dtok = Token(tdir, label="device")
    pin = dtok.pin()
    env = {"SOFTHSM2_CONF": dtok.conf}
    base = ["pkcs11-tool", "--module", SOFTHSM_MODULE, "--token-label", "device"]
    g = subprocess.run(base + ["--keypairgen", "--key-type", "EC:prime256v1", "--label", "1116",
                               "--id", "01", "--login", "--pin", pin],
                       capture_output=True, text=True, env=dict(os.environ, **env))
    tap.ok(g.returncode == 0, "pkcs11-tool made an EC P-256 key labelled 1116 in the device token",
           g.stdout + g.stderr)
    pub = subprocess.run(["openssl", "pkey", "-engine", "pkcs11", "-inform", "engine", "-pubin",
                          "-in", "pkcs11:token=device;object=1116;type=public", "-pubout"],
                         capture_output=True, text=True, env=dict(os.environ, **env))
    tdir2 = os.path.join(tmp, "tokenkeys")
    os.makedirs(tdir2)
    write(os.path.join(tdir2, "1116.pem"), pub.stdout)
    p = cli("device", "import", tdir2, "--product-line", "widgiot")
    tap.ok(pub.returncode == 0 and p.returncode == 0 and "imported 1" in p.stdout,
           "its public key, exported through the engine, imported", show(p) + pub.stderr)
    uri = "pkcs11:token=device;object=1116;type=private"
    crt6 = os.path.join(tmp, "1116.crt")
    p = cli("enroll", "--id", "1116", "--pkcs11-uri", uri, "--pin-file", dtok.pin_file,
            "--pkcs11-module", SOFTHSM_MODULE, *ep, "--out", crt6, "--chunk-size", "256",
            env=env)
    tap.ok(p.returncode == 0 and "serial:" in p.stdout and os.path.exists(crt6),
           "enroll with the token key through libp11's engine (--pin-file)", show(p))
    if os.path.exists(crt6) and pub.returncode == 0:
        from cryptography.hazmat.primitives.serialization import load_pem_public_key
        c6 = x509.load_pem_x509_certificate(open(crt6, "rb").read())
        tap.ok(c6.public_key().public_numbers() ==
               load_pem_public_key(pub.stdout.encode()).public_numbers()
               and c6.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "1116",
               "the certificate is for the token's key, CN 1116")
    p = cli("enroll", "--id", "1116", "--pkcs11-uri",
            uri + "?pin-source=file:" + dtok.pin_file, "--pkcs11-module", SOFTHSM_MODULE,
            *ep, "--idempotency-key", "pin-source", env=env)
    tap.ok(p.returncode == 0, "the PIN from the URI's pin-source works too", show(p))
    expect(cli("enroll", "--id", "1116", "--pkcs11-uri", uri + ";pin-value=" + pin,
               "--pkcs11-module", SOFTHSM_MODULE, *ep, env=env), 5,
           "a pin-value in the URI is refused (no PIN on the command line): exit 5",
           "pin-value")
    badpin = write(os.path.join(tmp, "bad.pin"), "000000\n", 0o600)
    expect(cli("enroll", "--id", "1116", "--pkcs11-uri", uri, "--pin-file", badpin,
               "--pkcs11-module", SOFTHSM_MODULE, *ep, env=env), 5,
           "a wrong PIN: exit 5 and one clear line", "no usable private key")
    os.chmod(dtok.pin_file, 0o644)
    expect(cli("enroll", "--id", "1116", "--pkcs11-uri", uri, "--pin-file", dtok.pin_file,
               "--pkcs11-module", SOFTHSM_MODULE, *ep, env=env), 5,
           "a PIN file others can read is refused: exit 5", "mode 0600")
    os.chmod(dtok.pin_file, 0o600)

    # cert show / list of an enrolled serial.
    p = cli("cert", "show", serial)
    tap.ok(p.returncode == 0 and "device:           1111" in p.stdout and
           "ca:               us-east-1.widgiot" in p.stdout and "status:           active"
           in p.stdout, "cert show: the enrolled serial, its device, CA and status", show(p))
    p = cli("cert", "show", serial.lower(), "--pem")
    tap.ok(p.returncode == 0 and p.stdout == open(crt).read(),
           "cert show --pem (lower-case serial accepted): the same certificate", show(p))
    p = cli("--json", "cert", "show", serial)
    j = jload(p)
    tap.ok(p.returncode == 0 and j and j["serial"] == serial and j["device_id"] == "1111"
           and j["profile"], "cert show --json", show(p))
    p = cli("cert", "show", serial[1:] if serial.startswith("0") else serial)
    tap.ok(p.returncode == 0 and serial in p.stdout,
           "cert show of a serial printed without its leading zero", show(p))
    expect(cli("cert", "show", "00AB"), 3, "cert show of an unknown serial: exit 3",
           "(NOT_FOUND)")
    expect(cli("cert", "show", "xyz"), 5, "cert show of something that is not hex: exit 5",
           "not a serial")
    p = cli("cert", "list", "--device", "1111")
    tap.ok(p.returncode == 0 and serial in p.stdout and len(p.stdout.splitlines()) == 2,
           "cert list --device 1111: its one certificate", show(p))
    p = cli("--json", "cert", "list", "--ca", "us-east-1.widgiot", "--limit", "2")
    j = jload(p)
    tap.ok(p.returncode == 0 and j and len(j["certificates"]) == 2,
           "cert list --ca --limit 2 --json: two certificates", show(p))

    # The device after enrollment.
    p = cli("device", "show", "1111")
    tap.ok(p.returncode == 0 and "state:            active" in p.stdout and
           "attribute  serialNumber = 1111" in p.stdout and "group      widgiot-devices"
           in p.stdout and serial in p.stdout, "device show after enrollment: active, the"
           " thing's attributes and group, the certificate", show(p))
    p = cli("--json", "device", "show", "1111")
    j = jload(p)
    tap.ok(p.returncode == 0 and j and j["device"]["state"] == "active" and
           j["thing"]["attributes"] == {"serialNumber": "1111", "region": "us-east-1"} and
           j["thing"]["groups"] == ["widgiot-devices"] and
           [c["serial"] for c in j["certificates"]] == [serial],
           "device show --json: device, thing and certificates", show(p))
    return ep


def test_refusals(cli, tmp, sg, az, devs, ep):
    stranger = Device(tmp, "9999", "ec-p256")
    p = cli("enroll", "--id", "9999", "--key", stranger.key, *ep)
    expect(p, 3, "enroll of an unknown device: exit 3, message and hint",
           "secretfree: enroll: device 9999 is not registered (NOT_FOUND)",
           "hint: import the device first: secretfree device import")
    expect(cli("enroll", "--id", "1112", "--key", devs["1111"].key, *ep), 4,
           "enroll with another device's key: exit 4", "(PERMISSION_DENIED)",
           "not the key registered")
    p = cli("device", "disable", "1113", "--reason", "returned for repair")
    tap.ok(p.returncode == 0 and p.stdout.strip() == "device 1113: disabled",
           "device disable", show(p))
    expect(cli("enroll", "--id", "1113", "--key", devs["1113"].key, *ep), 4,
           "enroll of a disabled device: exit 4", "disabled", "(PERMISSION_DENIED)")
    p = cli("--json", "device", "enable", "1113")
    j = jload(p)
    tap.ok(p.returncode == 0 and j and j["state"] == "registered", "device enable --json",
           show(p))
    p = cli("enroll", "--id", "1113", "--key", devs["1113"].key, *ep)
    tap.ok(p.returncode == 0, "enabled again: 1113 (RSA) enrolls", show(p))
    garbage = write(os.path.join(tmp, "garbage.csr"), "\x00\x01garbage" * 5)
    expect(cli("enroll", "--csr", garbage, *ep), 5, "a garbage CSR: exit 5",
           "(INVALID_ARGUMENT)")
    expect(cli("enroll", "--id", "1115", "--key", garbage, *ep), 5,
           "a key file that is not a key: exit 5", "not an unencrypted PEM private key")
    expect(cli("enroll", "--id", "1115", "--key", os.path.join(tmp, "nokey.pem"), *ep), 5,
           "a key file that is not there: exit 5", "nokey.pem")
    expect(cli("enroll", "--id", "bad/id", "--key", devs["1115"].key, *ep), 5,
           "a device id that is not one: exit 5", "bad device id")
    expect(cli("enroll", "--id", "1114", "--key", devs["1114"].key, *ep, "--region",
               "us-east-1"), 4, "a device registered in eu-west-1 asking for us-east-1: exit 4",
           "eu-west-1")
    expect(cli("enroll", "--key", devs["1115"].key, *ep), 2, "enroll without --id: exit 2",
           "--id is required", "try 'secretfree enroll --help'")
    expect(cli("enroll", "--id", "1115", "--key", devs["1115"].key, "--pkcs11-uri", "pkcs11:",
               *ep), 2, "--key and --pkcs11-uri together: exit 2", "either")
    expect(cli("ca", "frobnicate"), 2, "an unknown subcommand: exit 2", "unknown subcommand")
    expect(cli("--bogus", "ca", "list"), 2, "an unknown global option: exit 2", "--bogus")
    expect(cli("device", "import", "/nonexistent/devices.csv"), 5,
           "an import file that cannot be read: exit 5", "/nonexistent/devices.csv")
    expect(cli("device", "disable", "4242"), 3, "disable an unknown device: exit 3",
           "(NOT_FOUND)")

    # The signer stopped: authz answers UNAVAILABLE, so does the signer's socket.
    sg.stop()
    expect(cli("enroll", "--id", "1115", "--key", devs["1115"].key, *ep), 6,
           "enroll with the signer stopped: exit 6 (retry later)", "(UNAVAILABLE)")
    expect(cli("ca", "list"), 6, "ca list with the signer stopped: exit 6 and a hint",
           "(UNAVAILABLE)", "hint: is the signer running? check --signer")
    sg.start()
    expect(cli("--authz", "unix:" + os.path.join(tmp, "nowhere.sock"), "device", "list"), 6,
           "authz's admin socket unreachable: exit 6 and a hint", "(UNAVAILABLE)",
           "hint: is authz running? check --authz")
    expect(cli("--signer", sg.issuance, "ca", "list"), 4,
           "--signer naming the signer's issuance socket: PERMISSION_DENIED, exit 4, a hint",
           "(PERMISSION_DENIED)", "hint: --signer must name the signer's admin socket")
    expect(cli("--signer", az.admin, "ca", "list"), 1,
           "--signer naming authz's socket: UNIMPLEMENTED, exit 1, a hint",
           "(UNIMPLEMENTED)", "hint: --signer must name the signer's admin socket")
    expect(cli("enroll", "--id", "1115", "--key", devs["1115"].key, "--endpoint", az.device), 6,
           "TLS without the right CA file: exit 6", "(UNAVAILABLE)", "--ca-file")
    p = None
    for _ in range(40):     # authz finds the restarted signer within its back-off
        p = cli("enroll", "--id", "1115", "--key", devs["1115"].key, *ep)
        if p.returncode != 6:
            break
    tap.ok(p.returncode == 0, "the signer back: 1115 enrolls", show(p))


def test_rate_limit(cli, tmp, sg, devs, root, key, crt):
    """A second authz allowing one request per device and window."""
    d2 = os.path.join(tmp, "authz2")
    os.makedirs(d2)
    one = os.path.join(tmp, "one")
    os.makedirs(one)
    write(os.path.join(one, "2002.pem"), pem_of(devs["2002"]))
    az2 = Authz(d2, sg, crt, key, device_max=1).start()
    try:
        p = cli("--authz", az2.admin, "device", "import", one, "--product-line", "widgiot",
                "--region", "us-east-1")
        tap.ok(p.returncode == 0 and p.stdout.strip() == "imported 1, unchanged 0, refused 0",
               "import into a second authz: new there (the signer had it), so imported",
               show(p))
        ep = ["--endpoint", az2.device, "--ca-file", root, "--key", devs["2002"].key,
              "--id", "2002"]
        p = cli("enroll", *ep, "--idempotency-key", "a")
        tap.ok(p.returncode == 0, "the first request enrolls", show(p))
        expect(cli("enroll", *ep, "--idempotency-key", "b"), 7,
               "the second within the window: RESOURCE_EXHAUSTED, exit 7",
               "(RESOURCE_EXHAUSTED)", "hint: rate limited; retry later")
    finally:
        az2.stop()


def test_targets(cli, tmp, sg, az):
    env = cli.env
    saved_s, saved_a = env.pop("SECRETFREE_SIGNER"), env.pop("SECRETFREE_AUTHZ")
    try:
        expect(cli("device", "list"), 2, "no authz target: exit 2, naming the flag and variable",
               "--authz unix:PATH", "SECRETFREE_AUTHZ")
        expect(cli("ca", "list"), 2, "no signer target: exit 2", "--signer", "SECRETFREE_SIGNER")
        conf = write(os.path.join(tmp, "cli.conf"),
                     "[cli]\nsigner = %s\nauthz = %s\nendpoint = %s\nca_file = %s\n"
                     % (saved_s, saved_a, az.device, os.path.join(tmp, "root.pem")))
        p = cli("--config", conf, "ca", "list")
        tap.ok(p.returncode == 0 and "root" in p.stdout, "targets from --config FILE", show(p))
        p = cli("device", "list", env={"SECRETFREE_CONFIG": conf})
        tap.ok(p.returncode == 0 and "1111" in p.stdout, "targets from $SECRETFREE_CONFIG",
               show(p))
        os.makedirs(os.path.join(tmp, ".config", "secretfree"))
        write(os.path.join(tmp, ".config", "secretfree", "cli.conf"), open(conf).read())
        p = cli("device", "list", "--limit", "1")
        tap.ok(p.returncode == 0, "targets from ~/.config/secretfree/cli.conf", show(p))
        p = cli("enroll", "--id", "1111", "--key", os.path.join(tmp, "devices", "1111.key"),
                "--idempotency-key", "conf")
        tap.ok(p.returncode == 0 and "serial:" in p.stderr,
               "enroll's endpoint and ca_file from the configuration file", show(p))
        bogus = "unix:" + os.path.join(tmp, "bogus.sock")
        p = cli("device", "list", env={"SECRETFREE_AUTHZ": bogus})
        tap.ok(p.returncode == 6 and "bogus.sock" in p.stderr,
               "the environment wins over the configuration file", show(p))
        p = cli("--authz", saved_a, "device", "list", env={"SECRETFREE_AUTHZ": bogus})
        tap.ok(p.returncode == 0, "the flag wins over the environment", show(p))
        expect(cli("--authz", "localhost:1234", "device", "list"), 2,
               "an admin target that is not unix:PATH: exit 2", "is not unix:PATH")
        bad = write(os.path.join(tmp, "bad.conf"), "[cli]\nsignr = x\n")
        expect(cli("--config", bad, "ca", "list"), 2,
               "an unknown key in the configuration file: exit 2", "signr")
        expect(cli("--config", os.path.join(tmp, "none.conf"), "ca", "list"), 2,
               "a configuration file that is not there: exit 2", "none.conf")
        os.unlink(os.path.join(tmp, ".config", "secretfree", "cli.conf"))
    finally:
        env["SECRETFREE_SIGNER"], env["SECRETFREE_AUTHZ"] = saved_s, saved_a


def test_help(cli):
    p = cli("--help")
    tap.ok(p.returncode == 0 and "Exit status:" in p.stdout and "9  an import finished" in p.stdout
           and "Example" in p.stdout, "secretfree --help: commands, exit codes, example", show(p))
    p = cli("--version")
    tap.ok(p.returncode == 0 and p.stdout.startswith("secretfree "), "--version", show(p))
    subs = [("ca", s) for s in ("init", "create", "list", "show", "chain", "csr",
                                "import-cert", "issue-server")] + \
           [("device", s) for s in ("import", "list", "show", "disable", "enable")] + \
           [("enroll",), ("cert", "show"), ("cert", "list")]
    bad = []
    for s in subs:
        p = cli(*s, "--help")
        if p.returncode != 0 or "Example" not in p.stdout or "Usage: secretfree " + \
                " ".join(s) not in p.stdout:
            bad.append((s, p.returncode, p.stdout[:200]))
    tap.ok(not bad, "--help of all %d subcommands: exit 0, usage and an Example" % len(subs),
           bad)
    p = cli("ca", "--help")
    tap.ok(p.returncode == 0 and "issue-server" in p.stdout and "Example" in p.stdout,
           "ca --help lists the ca subcommands", show(p))
    p = cli("help", "device", "import")
    tap.ok(p.returncode == 0 and "Usage: secretfree device import" in p.stdout,
           "secretfree help device import", show(p))


def main():
    td = TempDir("sf-cli-")
    tmp = td.path
    sg = az = None
    try:
        cli = Cli(tmp)
        test_help(cli)
        tok = Token(os.path.join(tmp, "token"))
        sg = Signer(tmp, tok, extra=EXTRA_PRODUCT).start()
        cli.env["SECRETFREE_SIGNER"] = sg.admin
        root = test_ca(cli, tmp)
        test_external(cli, tmp, root)
        key, crt = test_issue_server(cli, tmp, root)
        az = Authz(tmp, sg, crt, key).start()
        cli.env["SECRETFREE_AUTHZ"] = az.admin
        devs = test_import(cli, tmp, sg, az)
        test_devices(cli)
        ep = test_enroll(cli, tmp, sg, az, devs, root)
        test_refusals(cli, tmp, sg, az, devs, ep)
        test_rate_limit(cli, tmp, sg, devs, root, key, crt)
        test_targets(cli, tmp, sg, az)
        tap.eq(az.stop(), 0, "authz exits 0")
        az = None
        tap.eq(sg.stop(), 0, "signer exits 0")
        sg = None
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
