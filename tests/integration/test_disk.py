#!/usr/bin/python3
"""A full disk and a failed fsync (issue 14), on the real daemons.

The signer's journal and authz's registry each live on a small tmpfs of
their own, mounted by the test (it runs as root; without the right to
mount, those checks are skipped and say so), and both daemons run with
tests/fault/fsyncfail.c preloaded, so that fsync fails while a flag file
exists.

- Disk full under the journal, then under the registry: enrollments answer
  OK or UNAVAILABLE (nothing else), the daemon's log says the disk is
  full, every certificate a device received is in the journal, and once
  space is freed the refused devices enroll with the same idempotency key.
- A failed fsync of the journal, then of the registry: that batch is not
  answered OK, and the daemon writes nothing more (UNAVAILABLE) even after
  the disk is healthy again, until it is restarted; then the refused
  devices enroll, and `PRAGMA integrity_check` is ok.
"""
import os
import sqlite3
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import tap  # noqa: E402
from sfharness import BUILD, Device, RpcError, Stack, TempDir, protos  # noqa: E402

pb = protos()
P = pb.provisioning
FSYNCFAIL = os.path.join(BUILD, "tests", "fault", "libfsyncfail.so")
SIZE = "8m"


def can_mount(tmp):
    probe = os.path.join(tmp, "probe")
    os.makedirs(probe)
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", probe],
                        capture_output=True).returncode == 0
    if ok:
        subprocess.run(["umount", probe])
    return ok


def fill(path, leave):
    """A filler file taking all but `leave` bytes of path's filesystem."""
    st = os.statvfs(path)
    free = st.f_bavail * st.f_frsize
    filler = os.path.join(path, "filler")
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, free - leave))
    return filler


class Devices:
    def __init__(self, st, tmp, prefix):
        self.st, self.tmp, self.prefix, self.n = st, tmp, prefix, 0
        self.received = {}

    def make(self, k):
        out = []
        for _ in range(k):
            self.n += 1
            out.append(Device(self.tmp, "%s-%04d" % (self.prefix, self.n)))
        self.st.register(out)
        return out

    def enroll(self, d):
        try:
            r = self.st.device.call("Provisioning", "Enroll",
                                    P.EnrollRequest(csr=d.csr(), idempotency_key="k-" + d.id),
                                    P.EnrollResponse, timeout=10)
            self.received[r.serial] = d.id
            return "OK"
        except RpcError as e:
            return e.code.name


def in_journal(st, serials):
    db = sqlite3.connect("file:%s?mode=ro" % st.signer.journal, uri=True, timeout=10)
    have = set(s for (s,) in db.execute("SELECT serial FROM certs"))
    db.close()
    return [s for s in serials if s not in have]


def integrity(path):
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=10)
    r = db.execute("PRAGMA integrity_check").fetchone()[0]
    db.close()
    return r


def disk_full(st, devs, daemon, mount, logword):
    pool = devs.make(300)
    filler = fill(mount, 96 * 1024)
    codes, refused = {}, []
    for d in pool:
        c = devs.enroll(d)
        codes[c] = codes.get(c, 0) + 1
        if c != "OK":
            refused.append(d)
        if len(refused) >= 5:
            break
    tap.ok(len(refused) >= 5, "%s's disk full: enrollments refused (%s)" % (daemon.name, codes))
    tap.eq(sorted(set(codes) - {"OK", "UNAVAILABLE"}), [],
           "  every answer OK or UNAVAILABLE")
    tap.ok(logword in daemon.log_text(), "  the %s log says the disk is full" % daemon.name)
    tap.ok(daemon.proc.poll() is None, "  %s is still running" % daemon.name)
    os.unlink(filler)
    ok = 0
    for d in refused:
        for _ in range(10):
            if devs.enroll(d) == "OK":
                ok += 1
                break
            time.sleep(0.3)
    tap.eq(ok, len(refused), "  space freed: the %d refused devices enroll with their keys"
           % len(refused))
    tap.eq(in_journal(st, list(devs.received)), [],
           "  every certificate received (%d) is in the journal" % len(devs.received))


def fsync_fails(st, devs, daemon, flag, logword, restart):
    a, b = devs.make(2)
    tap.eq(devs.enroll(a), "OK", "%s: enrollment works before the fault" % daemon.name)
    open(flag, "w").close()
    got = devs.enroll(b)
    tap.eq(got, "UNAVAILABLE", "%s's fsync fails: the enrollment is refused" % daemon.name)
    os.unlink(flag)
    tap.ok(logword in daemon.log_text(), "  the %s log says fsync failed" % daemon.name)
    got2 = devs.enroll(b)
    tap.eq(got2, "UNAVAILABLE", "  the disk is fine again: still UNAVAILABLE until a restart")
    tap.ok(daemon.proc.poll() is None, "  %s is still running" % daemon.name)
    restart()
    ok = any(devs.enroll(b) == "OK" or time.sleep(0.5) for _ in range(10))
    tap.ok(ok, "  after a restart the device enrolls with the same key")
    tap.eq(devs.enroll(devs.make(1)[0]), "OK", "  and so does a new device")
    tap.eq(integrity(st.signer.journal), "ok", "  journal integrity_check ok")
    tap.eq(integrity(st.authz.registry), "ok", "  registry integrity_check ok")
    tap.eq(in_journal(st, list(devs.received)), [],
           "  every certificate received is in the journal")


def restart(daemon):
    """Stop daemon and start it again, ready only once the new process
    serves (the log keeps the old one's lines)."""
    daemon.stop()
    for a in ("issuance", "admin"):
        sock = getattr(daemon, a, None)
        if sock and sock.startswith("unix:") and os.path.exists(sock[5:]):
            os.unlink(sock[5:])
    mark = len(daemon.log_text())
    ready = daemon.ready
    if daemon.name == "authz":
        daemon.ready = lambda: (os.path.exists(daemon.admin[5:])
                                and "serving" in daemon.log_text()[mark:])
    try:
        daemon.start(timeout=30)
    finally:
        daemon.ready = ready


def main():
    td = TempDir("sf-disk-")
    st = None
    mounts = []
    try:
        if not os.path.exists(FSYNCFAIL):
            tap.bail("%s not built" % FSYNCFAIL)
        mountable = can_mount(td.path)
        if mountable:
            for name in ("signer", "authz"):
                m = os.path.join(td.path, name)
                os.makedirs(m)
                subprocess.run(["mount", "-t", "tmpfs", "-o", "size=" + SIZE, "tmpfs", m],
                               check=True)
                mounts.append(m)
        sflag = os.path.join(td.path, "signer-fsync-fails")
        aflag = os.path.join(td.path, "authz-fsync-fails")
        st = Stack(td.path, regions=("us-east-1",),
                   signer_kw={"env": {"LD_PRELOAD": FSYNCFAIL, "SF_FSYNC_FAIL": sflag}})
        aenv = dict(os.environ, LD_PRELOAD=FSYNCFAIL, SF_FSYNC_FAIL=aflag)
        st.authz.env = lambda: aenv
        restart(st.authz)
        devs = Devices(st, td.path, "disk")

        if mountable:
            disk_full(st, devs, st.signer, mounts[0], "the disk is full")
            disk_full(st, devs, st.authz, mounts[1], "the disk is full")
        else:
            tap.skip("disk full under the journal and the registry",
                     "mounting a tmpfs is not allowed here")

        fsync_fails(st, devs, st.signer, sflag, "fsync failed", lambda: restart(st.signer))
        fsync_fails(st, devs, st.authz, aflag, "fsync failed", lambda: restart(st.authz))
    finally:
        if st:
            st.stop()
        for m in mounts:
            subprocess.run(["umount", m])
        td.cleanup()
    tap.done()


if __name__ == "__main__":
    main()
