#!/usr/bin/python3
"""kill -9 at any moment (issue 14). Devices enroll (each with an
idempotency key, retried with the same key until it works), renew and
acknowledge, and an admin revokes, all at once, while the signer or authz
is killed with SIGKILL at random moments and started again. After every
round a checker proves:

- `PRAGMA integrity_check` is ok on the journal and the registry;
- no serial appears twice in the journal;
- every certificate a client received is in the journal;
- every enrollment a client saw succeed can be fetched again by its
  enrollment id (Provisioning.FetchCertificate), byte for byte.
At the end every retried enrollment got its certificate (a retry after a
crash returns the certificate issued before it, never a second one), and
`secretfree audit reconcile` leaves journal and registry in agreement.
Each daemon's time to come back (from exec to serving) is reported.

  test_crash.py [ROUNDS]      (default 50; SF_CRASH_ROUNDS too)
"""
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import tap  # noqa: E402
from sfharness import Client, Device, RpcError, Stack, TempDir, protos, show  # noqa: E402

import grpc  # noqa: E402

pb = protos()
C, A, P = pb.common, pb.ca_admin, pb.provisioning

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else int(os.environ.get("SF_CRASH_ROUNDS", 50))
DEADLINE = 5.0


def sign(key, data):
    return subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=data,
                          capture_output=True, check=True).stdout


class World:
    """What clients were told, and the load that tells them."""

    def __init__(self, st, tmp):
        self.st = st
        self.tmp = tmp
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.n = 0
        self.received = {}      # serial -> (device id, certificate pem)
        self.enrolled = {}      # enrollment id -> (device, serial, bundle prefix)
        self.pending = []       # (device, key): enrollments not yet answered OK
        self.active = []        # (device, serial): devices with a live certificate
        self.revoked = set()
        self.second = []        # a retry that got another serial than before
        self.calls = {}

    def count(self, what):
        with self.lock:
            self.calls[what] = self.calls.get(what, 0) + 1

    def new_device(self):
        with self.lock:
            self.n += 1
            i = self.n
        d = Device(self.tmp, "crash-%05d" % i)
        while not self.stop.is_set():
            try:
                self.st.register([d])
                return d
            except Exception as e:
                self.count("register " + type(e).__name__ + " " + str(e)[:60])
                time.sleep(0.2)     # a daemon is down: register again
        return None

    def got(self, d, eid, serial, cert):
        with self.lock:
            if eid in self.enrolled and self.enrolled[eid][1] != serial:
                self.second.append((eid, self.enrolled[eid][1], serial))
            self.received[serial] = (d.id, cert)
            self.enrolled[eid] = (d, serial, cert)

    def enroll(self, d, key):
        try:
            r = self.st.device.call("Provisioning", "Enroll",
                                    P.EnrollRequest(csr=d.csr(), idempotency_key=key),
                                    P.EnrollResponse, timeout=DEADLINE)
        except RpcError as e:
            self.count("enroll " + e.code.name)
            return False
        self.count("enroll OK")
        self.got(d, r.enrollment_id, r.serial, r.certificate_pem)
        with self.lock:
            self.active.append((d, r.serial))
        return True

    def enroller(self):
        while not self.stop.is_set():
            with self.lock:
                retry = self.pending.pop(0) if self.pending and random.random() < 0.5 else None
            if retry is None:
                d = self.new_device()
                if d is None:
                    return
                retry = (d, "key-" + d.id)
            if not self.enroll(*retry):
                with self.lock:
                    self.pending.append(retry)
                time.sleep(0.05)

    def renewer(self):
        while not self.stop.is_set():
            time.sleep(0.1)
            with self.lock:
                if not self.active:
                    continue
                d, serial = self.active.pop(random.randrange(len(self.active)))
            try:
                r = self.st.device.call("Provisioning", "Renew",
                                        P.RenewRequest(csr=d.csr(), current_serial=serial,
                                                       idempotency_key="renew-" + serial),
                                        P.EnrollResponse, timeout=DEADLINE)
                self.count("renew OK")
                self.got(d, r.enrollment_id, r.serial, r.certificate_pem)
                self.st.device.call("Provisioning", "Acknowledge",
                                    P.AcknowledgeRequest(enrollment_id=r.enrollment_id,
                                                         serial=r.serial,
                                                         key_signature=sign(
                                                             d.key, r.enrollment_id.encode())),
                                    P.AcknowledgeResponse, timeout=DEADLINE)
                self.count("ack OK")
                with self.lock:
                    self.active.append((d, r.serial))
            except RpcError as e:
                self.count("renew/ack " + e.code.name)
                with self.lock:
                    self.active.append((d, serial))

    def revoker(self):
        while not self.stop.is_set():
            time.sleep(0.3)
            with self.lock:
                if len(self.active) < 4:
                    continue
                d, serial = self.active.pop(random.randrange(len(self.active)))
            try:
                self.st.sadmin.call("CaAdmin", "RevokeCertificate",
                                    A.RevokeCertificateRequest(
                                        serial=serial,
                                        reason=C.REVOCATION_REASON_KEY_COMPROMISE),
                                    C.CertificateInfo, timeout=DEADLINE)
                self.count("revoke OK")
                with self.lock:
                    self.revoked.add(serial)
            except RpcError as e:
                self.count("revoke " + e.code.name)
                with self.lock:
                    self.active.append((d, serial))


def restart(daemon, sockets):
    """SIGKILL daemon and start it again; seconds from exec to serving."""
    daemon.proc.send_signal(signal.SIGKILL)
    daemon.proc.wait()
    daemon.log.close()
    for s in sockets:
        try:
            os.unlink(s[5:])
        except FileNotFoundError:
            pass
    mark = len(daemon.log_text())
    ready = daemon.ready
    if daemon.name == "authz":
        daemon.ready = lambda: (os.path.exists(daemon.admin[5:])
                                and "serving" in daemon.log_text()[mark:])
    t0 = time.monotonic()
    try:
        daemon.start(timeout=30)
    finally:
        daemon.ready = ready
    return time.monotonic() - t0


def integrity(path):
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=10)
    try:
        return db.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        db.close()


def check_round(w, st, fetched):
    """The per-round checks; returns a list of problems."""
    bad = []
    for name, path in (("journal", st.signer.journal), ("registry", st.authz.registry)):
        r = integrity(path)
        if r != "ok":
            bad.append("%s integrity_check: %s" % (name, r))
    db = sqlite3.connect("file:%s?mode=ro" % st.signer.journal, uri=True, timeout=10)
    try:
        dup = db.execute("SELECT COUNT(*) - COUNT(DISTINCT serial) FROM certs").fetchone()[0]
        if dup:
            bad.append("%d serials twice in the journal" % dup)
        with w.lock:
            serials = list(w.received)
            todo = [(eid, v) for eid, v in w.enrolled.items() if eid not in fetched]
        have = set(s for (s,) in db.execute("SELECT serial FROM certs"))
        missing = [s for s in serials if s not in have]
        if missing:
            bad.append("received but not in the journal: %s" % missing[:5])
    finally:
        db.close()
    for eid, (d, serial, cert) in todo:
        # A connection still being made after a restart is not a loss:
        # UNAVAILABLE is retried for a few seconds; anything else counts.
        deadline = time.monotonic() + 5
        while True:
            try:
                r = st.device.call("Provisioning", "FetchCertificate",
                                   P.FetchCertificateRequest(enrollment_id=eid),
                                   P.FetchCertificateResponse, timeout=DEADLINE)
                if not r.data.decode().startswith(cert.strip()[:200]):
                    bad.append("enrollment %s fetched other bytes" % eid)
                fetched.add(eid)
                break
            except RpcError as e:
                if e.code.name == "UNAVAILABLE" and time.monotonic() < deadline:
                    time.sleep(0.2)
                    continue
                bad.append("enrollment %s cannot be fetched: %s" % (eid, e))
                break
    return bad


def main():
    td = TempDir("sf-crash-")
    st = None
    w = None
    threads = []
    try:
        st = Stack(td.path, regions=("us-east-1",), authz_kw={"signer_timeout_ms": 3000})
        # Clients that come back quickly after a restart (gRPC's default
        # reconnect back-off grows to minutes).
        opts = [("grpc.initial_reconnect_backoff_ms", 100),
                ("grpc.min_reconnect_backoff_ms", 100),
                ("grpc.max_reconnect_backoff_ms", 500)]
        st.sadmin = Client(st.signer.admin, options=opts)
        st.aadmin = Client(st.authz.admin, options=opts)
        st.device = Client(st.authz.device, grpc.ssl_channel_credentials(
            root_certificates=st.root_pem.encode()), options=opts)
        w = World(st, td.path)
        threads = [threading.Thread(target=w.enroller) for _ in range(3)]
        threads += [threading.Thread(target=w.renewer), threading.Thread(target=w.revoker)]
        for t in threads:
            t.start()
        times = {"signer": [], "authz": []}
        problems = []
        fetched = set()
        rnd = random.Random(int(os.environ.get("SF_CRASH_SEED", "1")))
        for i in range(ROUNDS):
            time.sleep(rnd.uniform(0.05, 0.6))
            if rnd.random() < 0.65:
                times["signer"].append(restart(st.signer, (st.signer.issuance,
                                                           st.signer.admin)))
            else:
                times["authz"].append(restart(st.authz, (st.authz.admin,)))
            time.sleep(0.3)   # let clients reconnect and retry
            p = check_round(w, st, fetched)
            if p:
                problems.append((i + 1, p))
        w.stop.set()
        for t in threads:
            t.join()
        tap.eq(problems, [], "%d rounds of kill -9: every round's checks held" % ROUNDS)
        tap.ok(st.signer.proc.poll() is None and st.authz.proc.poll() is None,
               "both daemons are up after the last round")

        # Every enrollment still pending gets its certificate with its key.
        left = list(w.pending)
        for d, key in left:
            ok = False
            for _ in range(20):
                if w.enroll(d, key):
                    ok = True
                    break
                time.sleep(0.25)
            if not ok:
                problems.append(("end", "enrollment of %s never succeeded" % d.id))
        tap.ok(not problems, "the %d enrollments still pending at the end all succeeded"
               % len(left), problems[-3:])
        tap.eq(w.second, [], "no retry got a second certificate for its enrollment")
        last = check_round(w, st, fetched)
        tap.eq(last, [], "final check: integrity, unique serials, every certificate in the "
               "journal, every enrollment fetchable (%d)" % len(fetched))
        p = st.cli("audit", "reconcile")
        tap.ok(p.returncode == 0, "audit reconcile: journal and registry agree afterwards",
               show(p))
        # Revocations went to the signer straight (CaAdmin), never mirrored:
        # certificate-status disagreements are expected; orphans are kills.
        lines = p.stdout.strip().splitlines()
        kinds = [ln for ln in lines if len(ln.split()) == 2 and ln.split()[1].isdigit()]
        tap.diag("audit reconcile: %s (%s)" % (lines[-1] if lines else "nothing",
                                                ", ".join(kinds)))
        p2 = st.cli("audit", "reconcile", "--dry-run")
        tap.eq(p2.returncode, 0, "  and a second look finds nothing to fix", show(p2))
        tap.ok(w.calls.get("enroll OK", 0) > ROUNDS, "load ran: %s" % json.dumps(w.calls))
        for name, ts in times.items():
            if ts:
                ts.sort()
                tap.diag("%s restarted %d times: back in median %.3f s, max %.3f s"
                         % (name, len(ts), ts[len(ts) // 2], ts[-1]))
        tap.diag("certificates received %d, revoked %d, enrollments fetched %d"
                 % (len(w.received), len(w.revoked), len(fetched)))
    finally:
        if w:
            w.stop.set()
            for t in threads:
                t.join(timeout=30)
        if st:
            st.stop()
        td.cleanup()
    tap.done()


if __name__ == "__main__":
    main()
