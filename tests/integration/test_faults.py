#!/usr/bin/python3
"""A failing token (issue 14): the signer's token is SoftHSM2 behind
tests/fault/p11fault.c, which injects each fault kind in turn while devices
enroll through authz and an admin revokes. For every kind, first once (the
Nth call) and then for every call for a few seconds:

- every call answers OK or UNAVAILABLE (no other status, no call past its
  deadline), and the signer stays up;
- enrollment works again by itself once the fault is gone;
- afterwards every certificate a client received verifies with `openssl
  verify` and has its row in the signer's journal, every revocation that
  was answered OK is in the journal, and no serial was issued twice.
The figures (calls, faults injected per kind, recovery time) are printed
as diagnostics."""
import os
import sqlite3
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import tap  # noqa: E402
from sfharness import (Device, RpcError, Stack, TempDir, openssl_verify,  # noqa: E402
                       protos, show)

import grpc  # noqa: E402

pb = protos()
C, A = pb.common, pb.ca_admin

SHIM = os.path.join(os.environ.get("SF_BUILD_ROOT", "build"), "tests", "fault",
                    "libp11fault.so")
# (schedule action, function it hits)
KINDS = [
    ("CKR_DEVICE_ERROR", "C_Sign"),
    ("CKR_SESSION_HANDLE_INVALID", "C_Sign"),
    ("CKR_USER_NOT_LOGGED_IN", "C_SignInit"),
    ("CKR_DEVICE_REMOVED", "*"),
    ("CKR_TOKEN_NOT_PRESENT", "*"),
    ("CKR_FUNCTION_FAILED", "C_Sign"),
    ("CKR_GENERAL_ERROR", "C_Sign"),
    ("delay=3000", "C_Sign"),
    ("flip", "C_Sign"),
]
CLIENT_DEADLINE = 8.0       # the device's deadline for Enroll
SIGNER_TIMEOUT_MS = 2000    # authz's deadline for the signer
PHASE_SECONDS = 2.5


class Run:
    """Concurrent enrollments and revocations; what each call got."""

    def __init__(self, st, tmp):
        self.st = st
        self.tmp = tmp
        self.lock = threading.Lock()
        self.n = 0
        self.issued = []        # (device id, serial, cert pem, chain pem)
        self.revoked = []       # serials the signer said OK to
        self.codes = {}         # status name -> count
        self.late = 0           # calls that took longer than their deadline
        self.devices = []

    def new_device(self):
        with self.lock:
            self.n += 1
            i = self.n
        d = Device(self.tmp, "fault-%05d" % i)
        self.st.register([d])
        return d

    def count(self, code):
        with self.lock:
            self.codes[code] = self.codes.get(code, 0) + 1

    def enroll_once(self, d, key):
        t0 = time.monotonic()
        try:
            r = self.st.device.call("Provisioning", "Enroll",
                                    pb.provisioning.EnrollRequest(csr=d.csr(), idempotency_key=key),
                                    pb.provisioning.EnrollResponse, timeout=CLIENT_DEADLINE)
            code = "OK"
            with self.lock:
                self.issued.append((d.id, r.serial, r.certificate_pem, r.chain_pem))
        except RpcError as e:
            code = e.code.name
        if time.monotonic() - t0 > CLIENT_DEADLINE + 0.5:
            with self.lock:
                self.late += 1
        self.count(code)
        return code

    def revoke_once(self):
        with self.lock:
            cand = [s for (_, s, _, _) in self.issued if s not in self.revoked]
        if not cand:
            return
        serial = cand[0]
        try:
            self.st.sadmin.call("CaAdmin", "RevokeCertificate",
                                A.RevokeCertificateRequest(
                                    serial=serial, reason=C.REVOCATION_REASON_SUPERSEDED),
                                C.CertificateInfo,
                                timeout=CLIENT_DEADLINE)
            with self.lock:
                self.revoked.append(serial)
            self.count("OK")
        except RpcError as e:
            self.count(e.code.name)

    def load(self, seconds, workers=3):
        """Enroll fresh devices (and revoke) from several threads."""
        stop = time.monotonic() + seconds

        def enroller():
            while time.monotonic() < stop:
                d = self.new_device()
                self.enroll_once(d, "k-" + d.id)

        def revoker():
            while time.monotonic() < stop:
                self.revoke_once()
                time.sleep(0.2)

        ts = [threading.Thread(target=enroller) for _ in range(workers)]
        ts.append(threading.Thread(target=revoker))
        for t in ts:
            t.start()
        for t in ts:
            t.join()


def schedule(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def recover(run, timeout=20.0):
    """Seconds until a fresh device enrolls again; None if it never does."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        d = run.new_device()
        if run.enroll_once(d, "r-" + d.id) == "OK":
            return time.monotonic() - t0
        time.sleep(0.2)
    return None


def main():
    td = TempDir("sf-faults-")
    st = None
    sched = os.path.join(td.path, "schedule")
    faultlog = os.path.join(td.path, "faults.log")
    try:
        if not os.path.exists(SHIM):
            tap.bail("fault module %s not built" % SHIM)
        env = {"SF_P11FAULT_SCHEDULE": sched, "SF_P11FAULT_LOG": faultlog}
        st = Stack(td.path, regions=("us-east-1",),
                   signer_kw={"module": SHIM, "env": env},
                   authz_kw={"signer_timeout_ms": SIGNER_TIMEOUT_MS})
        run = Run(st, td.path)
        d = run.new_device()
        tap.eq(run.enroll_once(d, "warm"), "OK", "enrollment works through the fault module")
        run.load(1.0)

        check_status(st, sched)
        for action, func in KINDS:
            before = dict(run.codes)
            faults_before = count_lines(faultlog)
            # Once: the Nth call of the function fails, the next works.
            schedule(sched, "%s %s nth=2\n" % (func, action))
            run.load(1.0)
            # Every call, for a while.
            schedule(sched, "%s %s from=1\n" % (func, action))
            run.load(PHASE_SECONDS)
            schedule(sched, "")
            injected = count_lines(faultlog) - faults_before
            phase = {k: run.codes.get(k, 0) - before.get(k, 0) for k in run.codes}
            others = {k: v for k, v in phase.items() if k not in ("OK", "UNAVAILABLE") and v}
            tap.ok(injected > 0, "%s on %s: %d faults injected" % (action, func, injected))
            tap.eq(others, {}, "%s: every call answered OK or UNAVAILABLE (%s)"
                   % (action, ", ".join("%s %d" % kv for kv in sorted(phase.items()))))
            tap.ok(phase.get("UNAVAILABLE", 0) > 0,
                   "%s: the fault reached the devices as UNAVAILABLE" % action)
            tap.ok(st.signer.proc.poll() is None, "%s: the signer is still running" % action)
            secs = recover(run)
            tap.ok(secs is not None, "%s: enrollment works again by itself (%.2f s)"
                   % (action, secs if secs is not None else -1))

        tap.eq(run.late, 0, "no call outlived its %.0f s deadline" % CLIENT_DEADLINE)
        check_after(st, run, td.path)
        tap.diag("calls: %s; certificates received %d, revocations %d; faults injected %d"
                 % (run.codes, len(run.issued), len(run.revoked), count_lines(faultlog)))
    finally:
        if st:
            st.stop()
        td.cleanup()
    tap.done()


def check_status(st, sched):
    """secretfree status: UNAVAILABLE (exit 6) while the token is pulled,
    available again (exit 0) with the fault and the repair counted."""
    import json
    p = st.cli("--json", "status")
    tap.eq(p.returncode, 0, "status: exit 0 while all is well", show(p))
    before = json.loads(p.stdout)
    tap.ok(before["token"]["available"] and before["authz"] == "ok"
           and before["cas_unavailable"] == 0,
           "status: token available, authz ok, no CA unavailable")
    schedule(sched, "* CKR_TOKEN_NOT_PRESENT from=1\n")
    p = st.cli("status")
    tap.eq(p.returncode, 6, "status: exit 6 while the token is pulled", show(p))
    tap.ok("UNAVAILABLE" in p.stdout, "status: says the token is UNAVAILABLE", show(p))
    schedule(sched, "")
    p = st.cli("--json", "status")
    after = json.loads(p.stdout) if p.returncode == 0 else None
    tap.ok(after is not None and after["token"]["available"]
           and after["token"]["faults"] > before["token"]["faults"]
           and after["token"]["repairs"] > before["token"]["repairs"]
           and after["token"]["last_fault"] != "",
           "status: available again, the fault and the repair counted", show(p))


def count_lines(path):
    try:
        with open(path) as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0


def check_after(st, run, tmp):
    db = sqlite3.connect("file:%s?mode=ro" % st.signer.journal, uri=True)
    rows = dict(db.execute("SELECT serial, status FROM certs WHERE device_id != ''"))
    serials = [s for (_, s, _, _) in run.issued]
    missing = [s for s in serials if s not in rows]
    tap.eq(missing, [], "every one of %d certificates received is in the journal" % len(serials))
    dup = db.execute("SELECT COUNT(*) - COUNT(DISTINCT serial) FROM certs").fetchone()[0]
    tap.eq(dup, 0, "no serial appears twice in the journal")
    bad = 0
    for (_, _, cert, chain) in run.issued:
        good, _ = openssl_verify(tmp, chain, cert)
        bad += not good
    tap.eq(bad, 0, "every certificate received verifies with openssl verify")
    revoked = dict(db.execute("SELECT serial, status FROM certs WHERE status = %d"
                              % C.CERTIFICATE_STATUS_REVOKED))
    lost = [s for s in run.revoked if s not in revoked]
    tap.eq(lost, [], "every revocation answered OK (%d) is in the journal" % len(run.revoked))
    db.close()


if __name__ == "__main__":
    try:
        main()
    except grpc.RpcError as e:
        tap.bail("rpc error: %s" % e)
