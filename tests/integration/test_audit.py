#!/usr/bin/python3
"""The tamper-evident audit trail (issue 14): a real signer on a real
SoftHSM2 token, authz in front, and the CLI.

- CAs created, devices imported, enrolled, a certificate revoked, a device
  disabled, CRLs signed: each is an event, and `secretfree audit verify`
  says the trail is intact (exit 0);
- a stock `sqlite3` cannot change an audited table (the triggers need the
  signer's functions);
- one row of audit_events edited, deleted, inserted (in the middle, and
  after the last event), or two reordered, with the `sqlite3` tool behind
  the running signer's back: `audit verify` exits 11 naming exactly that
  event and that damage, and the signer refuses to sign a checkpoint of
  it; a checkpoint row altered is named too;
- `audit checkpoint --out` and `audit export --checkpoint
  --checkpoint-files` give files that `openssl dgst -sha256 -verify` alone
  accepts, the export's chain recomputes with scripts/audit-chain (Python's
  hashlib) to the signed head, and `audit verify --file --key` accepts it;
  an export with one event edited, or a signed text altered, is refused.
"""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import tap  # noqa: E402
from sfharness import Device, SRC, Stack, TempDir, protos, show  # noqa: E402

pb = protos()
C, A = pb.common, pb.ca_admin
CHAIN = os.path.join(SRC, "scripts", "audit-chain")


def sq(db, sql):
    """The sqlite3 command-line tool on the journal, as an intruder would."""
    return subprocess.run(["sqlite3", "-bail", "-cmd", ".timeout 10000", db, sql],
                          capture_output=True, text=True, timeout=60)


def verify(cli):
    p = cli("--json", "audit", "verify")
    try:
        return p, json.loads(p.stdout)
    except ValueError:
        return p, {}


def openssl_ok(prefix):
    p = subprocess.run(["openssl", "dgst", "-sha256", "-verify", prefix + ".pub.pem",
                        "-signature", prefix + ".sig", prefix + ".txt"],
                       capture_output=True, text=True)
    return p.returncode == 0 and "Verified OK" in p.stdout, p


def make_events(st, td):
    cli = st.cli
    devs = [Device(td, "au-%d" % i) for i in range(1, 5)]
    st.register(devs)
    serials = [st.enroll(d, key="k-" + d.id).serial for d in devs[:3]]
    p = cli("cert", "revoke", serials[0], "--reason", "key-compromise")
    tap.ok(p.returncode == 0, "a certificate revoked", show(p))
    p = cli("device", "disable", devs[3].id, "--reason", "lost")
    tap.ok(p.returncode in (0, 10), "a device disabled", show(p))
    # The CRL task follows the revocation.
    deadline = time.time() + 20
    kinds = []
    while time.time() < deadline:
        r = sq(st.signer.journal, "SELECT kind FROM audit_events ORDER BY seq")
        kinds = r.stdout.split()
        if "certificate-revoked" in kinds and \
                "crl-signed" in kinds[kinds.index("certificate-revoked"):]:
            break
        time.sleep(0.3)
    for k in ("journal-created", "ca-created", "device-registered",
              "certificate-issued", "certificate-revoked", "device-disabled",
              "crl-signed"):
        tap.ok(k in kinds, "the trail has %s events" % k, kinds)
    return kinds


def test_intact(st):
    p, v = verify(st.cli)
    tap.eq(p.returncode, 0, "audit verify: exit 0 on an intact trail", show(p))
    tap.ok(v.get("intact") and v.get("first_bad_seq") == 0 and v.get("events", 0) > 10,
           "intact, every event walked", v)
    p = st.cli("audit", "verify")
    tap.ok(p.returncode == 0 and "intact" in p.stdout, "and says so", show(p))


def test_stock_sqlite(st):
    r = sq(st.signer.journal, "UPDATE devices SET state = 2 WHERE device_id = 'au-4'")
    tap.ok(r.returncode != 0 and "no such function" in r.stderr,
           "a stock sqlite3 cannot change an audited table", r.stderr)
    r = sq(st.signer.journal, "SELECT state FROM devices WHERE device_id = 'au-4'")
    tap.eq(r.stdout.strip(), str(C.DEVICE_STATE_DISABLED), "the device is still disabled")


def seq_of(db, kind):
    r = sq(db, "SELECT min(seq) FROM audit_events WHERE kind = '%s'" % kind)
    return int(r.stdout.strip())


def test_tamper(st):
    db, cli = st.signer.journal, st.cli
    r = sq(db, "CREATE TABLE audit_backup AS SELECT * FROM audit_events")
    tap.eq(r.returncode, 0, "keep a copy of the events", r.stderr)
    k = seq_of(db, "certificate-revoked")
    last = int(sq(db, "SELECT max(seq) FROM audit_events").stdout)
    cases = [
        ("edit", "UPDATE audit_events SET detail = json_set(detail, '$.revocation_reason', 0)"
                 " WHERE seq = %d" % k, k, "edited"),
        ("delete", "DELETE FROM audit_events WHERE seq = %d" % k, k, "deleted"),
        ("insert", "UPDATE audit_events SET seq = -seq WHERE seq >= {k};"
                   " UPDATE audit_events SET seq = 1 - seq WHERE seq < 0;"
                   " INSERT INTO audit_events SELECT {k}, at, 'certificate-revoked', subject,"
                   " detail, prev, hash FROM audit_events WHERE seq = {k1}".format(k=k, k1=k + 1),
         k, "inserted"),
        ("insert at the end", "INSERT INTO audit_events SELECT seq + 1, at, kind, subject,"
                              " detail, hash, hash FROM audit_events WHERE seq = %d" % last,
         last + 1, "inserted"),
        ("reorder", "UPDATE audit_events SET seq = -1 WHERE seq = {k};"
                    " UPDATE audit_events SET seq = {k} WHERE seq = {k1};"
                    " UPDATE audit_events SET seq = {k1} WHERE seq = -1".format(k=k, k1=k + 1),
         k, "reordered"),
    ]
    for name, sql, bad, damage in cases:
        r = sq(db, "BEGIN; %s; COMMIT;" % sql)
        tap.eq(r.returncode, 0, "%s: tamper with sqlite3" % name, r.stderr)
        p, v = verify(cli)
        tap.eq(p.returncode, 11, "%s: audit verify exits 11" % name, show(p))
        tap.eq((v.get("first_bad_seq"), v.get("damage")), (bad, damage),
               "%s: names event %d, %s" % (name, bad, damage), v.get("problem"))
        p = cli("audit", "verify")
        tap.ok("event %d" % bad in p.stderr and damage in p.stderr,
               "%s: the message names it" % name, show(p))
        if name == "edit":
            p = cli("audit", "checkpoint")
            tap.ok(p.returncode == 8 and "broken at event %d" % k in p.stderr,
                   "a broken trail is not signed (exit 8)", show(p))
        r = sq(db, "BEGIN; DELETE FROM audit_events;"
                   " INSERT INTO audit_events SELECT * FROM audit_backup; COMMIT;")
        p, v = verify(cli)
        tap.ok(r.returncode == 0 and p.returncode == 0, "%s: restored, intact again" % name,
               show(p))
    # A checkpoint altered.
    p = cli("audit", "checkpoint")
    tap.eq(p.returncode, 0, "a checkpoint", show(p))
    cp = int(sq(db, "SELECT max(seq) FROM audit_checkpoints").stdout)
    r = sq(db, "CREATE TABLE cp_backup AS SELECT * FROM audit_checkpoints;"
               " UPDATE audit_checkpoints SET at = at + 1 WHERE seq = %d" % cp)
    p, v = verify(cli)
    tap.ok(p.returncode == 11 and v.get("first_bad_seq") == cp and v.get("damage") == "checkpoint",
           "a checkpoint altered: its signature no longer verifies", v)
    sq(db, "DELETE FROM audit_checkpoints; INSERT INTO audit_checkpoints SELECT * FROM"
           " cp_backup; DROP TABLE cp_backup; DROP TABLE audit_backup;")
    p, v = verify(cli)
    tap.ok(p.returncode == 0 and v.get("checkpoints", 0) >= 1, "restored: intact, checkpoints"
           " verified", v)


def test_export(st, td):
    cli = st.cli
    cp = os.path.join(td, "cp")
    p = cli("audit", "checkpoint", "--out", cp)
    tap.eq(p.returncode, 0, "audit checkpoint --out", show(p))
    good, o = openssl_ok(cp)
    tap.ok(good, "openssl dgst -sha256 -verify accepts the checkpoint", o.stdout + o.stderr)
    p = cli("--json", "audit", "checkpoint")
    j = json.loads(p.stdout) if p.returncode == 0 else {}
    tap.ok(j.get("made") is False and j.get("seq"), "asked again: the same checkpoint", show(p))

    # Something after the checkpoint, then an export with a fresh one.
    d = Device(td, "au-9")
    st.register([d])
    out = os.path.join(td, "audit.jsonl")
    ex = os.path.join(td, "ex")
    p = cli("audit", "export", "--checkpoint", "--out", out, "--checkpoint-files", ex)
    tap.eq(p.returncode, 0, "audit export --checkpoint --out --checkpoint-files", show(p))
    tap.ok("covers them all" in p.stdout, "the last checkpoint covers the export", p.stdout)
    with open(out) as f:
        lines = [json.loads(x) for x in f]
    events = [x for x in lines if x["type"] == "event"]
    cps = [x for x in lines if x["type"] == "checkpoint"]
    tap.ok(events and events[0]["seq"] == 1 and
           [e["seq"] for e in events] == list(range(1, len(events) + 1)),
           "one line per event, in seq order from 1", [e["seq"] for e in events][:5])
    tap.ok(len(cps) >= 2 and cps[-1]["seq"] == events[-1]["seq"],
           "the checkpoints are in it, the last at the last event", [c["seq"] for c in cps])
    good, o = openssl_ok(ex)
    tap.ok(good, "the export's checkpoint verifies with openssl alone", o.stdout + o.stderr)
    with open(ex + ".txt") as f:
        text = f.read().split("\n")
    r = subprocess.run([sys.executable, CHAIN, out], capture_output=True, text=True)
    tap.ok(r.returncode == 0 and ("head %s" % text[2]) in r.stdout and text[1] == str(events[-1]["seq"]),
           "scripts/audit-chain recomputes the chain to the signed head", r.stdout + r.stderr)
    p = cli("audit", "verify", "--file", out, "--key", ex + ".pub.pem")
    tap.ok(p.returncode == 0 and "up to %d are signed" % events[-1]["seq"] in p.stdout,
           "audit verify --file --key: intact and covered", show(p))

    # --since
    p = cli("audit", "export", "--since", str(events[-3]["seq"]))
    got = [json.loads(x) for x in p.stdout.splitlines()]
    tap.ok(p.returncode == 0 and [x["seq"] for x in got if x["type"] == "event"] ==
           [e["seq"] for e in events[-3:]], "--since SEQ: from that event on", show(p))
    part = os.path.join(td, "part.jsonl")
    with open(part, "w") as f:
        f.write(p.stdout)
    p = cli("audit", "verify", "--file", part)
    tap.eq(p.returncode, 0, "a partial export verifies from where it starts", show(p))
    p = cli("audit", "export", "--since", "@%d" % (int(time.time()) + 3600))
    tap.ok(p.returncode == 0 and p.stdout == "", "--since a future time: nothing", show(p))

    # A tampered export.
    bad = os.path.join(td, "bad.jsonl")
    victim = events[len(events) // 2]
    with open(out) as f, open(bad, "w") as g:
        for x in f:
            o = json.loads(x)
            if o["type"] == "event" and o["seq"] == victim["seq"]:
                o["subject"] = "forged"
            g.write(json.dumps(o) + "\n")
    p = cli("--json", "audit", "verify", "--file", bad, "--key", ex + ".pub.pem")
    v = json.loads(p.stdout) if p.stdout else {}
    tap.ok(p.returncode == 11 and v.get("first_bad_seq") == victim["seq"] and
           v.get("damage") == "edited", "an export with an event edited: exit 11 naming it", show(p))
    r = subprocess.run([sys.executable, CHAIN, bad], capture_output=True, text=True)
    tap.ok(r.returncode != 0 and "event %d" % victim["seq"] in r.stderr,
           "scripts/audit-chain refuses it too", r.stderr)
    with open(ex + ".txt") as f:
        t = f.read()
    with open(ex + ".txt", "w") as f:
        f.write(t.replace("\n%s\n" % text[1], "\n%d\n" % (int(text[1]) + 1), 1))
    good, o = openssl_ok(ex)
    tap.ok(not good and "Verification failure" in o.stdout + o.stderr,
           "a signed text altered: openssl refuses it", o.stdout + o.stderr)
    other = os.path.join(td, "other.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-out", other + ".key"], capture_output=True)
    subprocess.run(["openssl", "pkey", "-in", other + ".key", "-pubout", "-out", other],
                   capture_output=True)
    p = cli("audit", "verify", "--file", out, "--key", other)
    tap.ok(p.returncode == 11 and "checkpoint" in p.stderr,
           "an export checked with another key: refused", show(p))


def test_help(cli):
    bad = []
    for s in ("verify", "export", "checkpoint"):
        p = cli("audit", s, "--help")
        if p.returncode != 0 or "Usage: secretfree audit " + s not in p.stdout or \
                "Exit status" not in p.stdout or "Example" not in p.stdout:
            bad.append((s, p.returncode, p.stdout[:200]))
    tap.ok(not bad, "--help: usage, exit status and an example", bad)
    p = cli("--help")
    tap.ok("11 audit verify" in p.stdout, "secretfree --help lists exit 11", p.stdout[-800:])


def main():
    td = TempDir("sf-audit-")
    st = None
    try:
        st = Stack(td.path, regions=("us-east-1",))
        make_events(st, td.path)
        test_intact(st)
        test_stock_sqlite(st)
        test_tamper(st)
        test_export(st, td.path)
        test_help(st.cli)
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
