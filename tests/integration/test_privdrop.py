#!/usr/bin/python3
"""The privilege drop as signer/README.md and authz/README.md document it:
both daemons started as root, each with a service user of its own made
here with useradd (and removed at the end). The signer opens the token and
reads a PIN file owned by its user (0600) as root, then runs as that user;
authz runs as its user and reaches the signer's issuance socket through
the socket's group. /proc/PID/status says who they run as. A PIN file of
another owner or mode, and root without [signer] user / [authz] user, are
refused with a message naming the problem; user = root is accepted."""
import grp
import os
import pwd
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import tap  # noqa: E402
from sfharness import (BUILD, Authz, Device, Signer, TempDir, Token,  # noqa: E402
                       build_hierarchy, openssl_verify, protos, run, server_cert)

pb = protos()
C = pb.common


def ids(pid):
    """(Uid, Gid, Groups) of a process: Uid and Gid as 4 numbers each."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("Uid", "Gid", "Groups"):
                out[k] = [int(x) for x in v.split()]
    return out["Uid"], out["Gid"], out["Groups"]


def chown_tree(path, uid, gid):
    os.chown(path, uid, gid)
    for root, dirs, files in os.walk(path):
        for n in dirs + files:
            os.chown(os.path.join(root, n), uid, gid)


def without_user(daemon):
    """Rewrite a daemon's configuration without its user line."""
    with open(daemon.conf_path) as f:
        lines = [l for l in f if not l.startswith("user = ")]
    with open(daemon.conf_path, "w") as f:
        f.writelines(lines)


def refused(daemon, conf, env, timeout=30):
    """Start a daemon that must refuse: (exit status, its output)."""
    p = subprocess.run([os.path.join(BUILD, daemon, "secretfree-" + daemon), "-c", conf],
                       env=env, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout + p.stderr


class Users:
    """Two service users made for the test, as a package would make them:
    secretfree-authz's twin, and secretfree-signer's twin, which is also a
    member of the authz user's group (its issuance socket's group)."""

    def __init__(self):
        tag = str(os.getpid())
        self.authz = "sfa" + tag
        self.signer = "sfs" + tag
        self.made = []
        for name, extra in ((self.authz, []), (self.signer, ["-G", self.authz])):
            run(["useradd", "--system", "--user-group", "--no-create-home",
                 "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin"]
                + extra + [name])
            self.made.append(name)

    def pw(self, name):
        return pwd.getpwnam(name)

    def cleanup(self):
        for name in reversed(self.made):
            run(["userdel", name], check=False)
            try:
                grp.getgrnam(name)
                run(["groupdel", name], check=False)
            except KeyError:
                pass


def test_refusals(tmp, users):
    """Root without a user, a PIN file of another owner or mode: each stops
    start-up with a message that names the problem."""
    d = os.path.join(tmp, "refuse")
    os.makedirs(d)
    tok = Token(os.path.join(d, "token"))
    sg = Signer(d, tok)
    su = users.pw(users.signer)

    without_user(sg)
    rc, out = refused("signer", sg.conf_path, sg.env())
    tap.ok(rc == 1 and "[signer] user is not set" in out and "user = root" in out,
           "signer started as root without [signer] user: refused, the key named", out)
    tap.ok("token" not in out.split("[signer] user")[0],
           "and refused before the token is opened", out)

    sg.write_conf(user=users.signer)
    chown_tree(d, su.pw_uid, su.pw_gid)
    os.chown(tok.pin_file, users.pw(users.authz).pw_uid, su.pw_gid)
    rc, out = refused("signer", sg.conf_path, sg.env())
    tap.ok(rc == 1 and "PIN file %s is owned by uid %d" % (tok.pin_file, users.pw(users.authz).pw_uid)
           in out and "signer's user (uid %d)" % su.pw_uid in out,
           "a PIN file owned by another user: refused, owner and expected user named", out)

    os.chown(tok.pin_file, su.pw_uid, su.pw_gid)
    os.chmod(tok.pin_file, 0o640)
    rc, out = refused("signer", sg.conf_path, sg.env())
    tap.ok(rc == 1 and "has mode 0640" in out and "chmod 600" in out,
           "a PIN file the group may read: refused, the mode named", out)
    os.chmod(tok.pin_file, 0o600)

    # authz: the same rule, before the registry is opened.
    ad = os.path.join(tmp, "refuse-authz")
    os.makedirs(ad)
    az = Authz(ad, sg, "/nonexistent.crt", "/nonexistent.key")
    without_user(az)
    rc, out = refused("authz", az.conf_path, None)
    tap.ok(rc == 1 and "[authz] user is not set" in out and "user = root" in out,
           "authz started as root without [authz] user: refused, the key named", out)
    tap.ok(not os.path.exists(az.registry), "and nothing was created (no registry)")

    az.write_conf(user="no-such-user-sf")
    rc, out = refused("authz", az.conf_path, None)
    tap.ok(rc == 1 and "[authz] user: unknown user no-such-user-sf" in out,
           "an unknown user: refused, named", out)


def test_service_users(tmp, users):
    """The documented set-up end to end: each daemon as its own user."""
    su, au = users.pw(users.signer), users.pw(users.authz)
    sdir = os.path.join(tmp, "signer-home")
    adir = os.path.join(tmp, "authz-home")
    os.makedirs(sdir)
    os.makedirs(adir)
    tok = Token(os.path.join(sdir, "token"))
    sg = Signer(sdir, tok, user=users.signer,
                extra="", limits_extra="")
    # Sockets: authz's user on the issuance socket (through its group), root
    # (this test) on the admin socket.
    with open(sg.conf_path) as f:
        text = f.read()
    text = text.replace("[signer]\n", "[signer]\nissuance_uids = %s\nissuance_group = %s\n"
                        "admin_uids = 0\n" % (users.authz, users.authz), 1)
    with open(sg.conf_path, "w") as f:
        f.write(text)
    # The token, the journal's directory and the PIN file belong to the
    # signer's user: the PIN file 0600, as the README says.
    chown_tree(sdir, su.pw_uid, su.pw_gid)
    os.chmod(tok.pin_file, 0o600)
    sg.start()
    try:
        uid, gid, groups = ids(sg.proc.pid)
        tap.eq(uid, [su.pw_uid] * 4, "signer: real, effective, saved and fs uid are its user's")
        tap.eq(gid, [su.pw_gid] * 4, "signer: and so are its gids")
        tap.eq(sorted(groups), sorted([su.pw_gid, au.pw_gid]),
               "signer: supplementary groups are its user's (its own and authz's), no root group")
        tap.ok("running as user %s (uid %d)" % (users.signer, su.pw_uid) in sg.log_text(),
               "signer: the log says whom it runs as")
        admin = sg.admin_client()
        cas = build_hierarchy(admin, regions=("us-east-1",))
        tap.eq(len(cas), 3, "signer: generates CA keys in the token as its user")
        tap.eq(os.stat(sg.journal).st_uid, su.pw_uid, "signer: the journal belongs to its user")
        st = os.stat(os.path.join(sdir, "run", "issuance"))
        tap.ok(st.st_uid == su.pw_uid and st.st_gid == au.pw_gid and st.st_mode & 0o777 == 0o750,
               "issuance socket directory: the signer's, group authz's, 0750",
               "uid %d gid %d mode %o" % (st.st_uid, st.st_gid, st.st_mode & 0o777))

        key, crt, root_pem = server_cert(admin, adir, "authz")
        chown_tree(adir, au.pw_uid, au.pw_gid)
        az = Authz(adir, sg, crt, key, user=users.authz,
                   authz_extra="admin_uids = 0\n")
        os.chown(os.path.join(adir, "authz"), au.pw_uid, au.pw_gid)
        az.start()
        try:
            uid, gid, groups = ids(az.proc.pid)
            tap.eq(uid, [au.pw_uid] * 4, "authz: real, effective, saved and fs uid are its user's")
            tap.eq(gid, [au.pw_gid] * 4, "authz: and so are its gids")
            tap.eq(groups, [au.pw_gid], "authz: its own group only")
            tap.eq(os.stat(az.registry).st_uid, au.pw_uid, "authz: the registry belongs to its user")
            dev = Device(tmp, "7701")
            recs = [C.DeviceKeyRecord(device_id=dev.id, spki_der=dev.spki_der(),
                                      product_line="widgiot", line=1)]
            admin.call("CaAdmin", "RegisterDeviceKeys",
                       pb.ca_admin.RegisterDeviceKeysRequest(records=recs), C.ImportResult)
            aadmin = az.admin_client()
            aadmin.call("Registry", "ImportDevices",
                        pb.registry.ImportDevicesRequest(records=recs), C.ImportResult)
            r = az.device_client(root_pem).call(
                "Provisioning", "Enroll", pb.provisioning.EnrollRequest(csr=dev.csr()),
                pb.provisioning.EnrollResponse)
            good, why = openssl_verify(tmp, r.chain_pem, r.certificate_pem)
            tap.ok(good, "a device enrolls through authz (its user) and the signer (its user)", why)
            aadmin.close()
        finally:
            az.stop()
        admin.close()
    finally:
        sg.stop()

    # A root-owned PIN file (0600) is fine too: only root can read it, and
    # root reads it before the drop.
    os.chown(tok.pin_file, 0, 0)
    sg.start()
    try:
        tap.eq(ids(sg.proc.pid)[0], [su.pw_uid] * 4,
               "a PIN file owned by root (0600) is accepted; the signer still runs as its user")
    finally:
        sg.stop()


def test_user_root(tmp):
    """user = root: staying root on purpose is accepted, and said."""
    d = os.path.join(tmp, "asroot")
    os.makedirs(d)
    tok = Token(os.path.join(d, "token"))
    sg = Signer(d, tok, user="root").start()
    try:
        tap.eq(ids(sg.proc.pid)[0], [0] * 4, "user = root: the signer starts and stays root")
        tap.ok("running as user root (uid 0): [signer] user = root" in sg.log_text(),
               "and the log says it was asked to", sg.log_text()[-800:])
    finally:
        sg.stop()


def main():
    if os.geteuid() != 0:
        tap.skip("privilege drop", "needs root (useradd, chown)")
        return tap.done()
    td = TempDir("sf-privdrop-")
    os.chmod(td.path, 0o755)
    users = None
    try:
        users = Users()
        test_refusals(td.path, users)
        test_service_users(td.path, users)
        test_user_root(td.path)
    except Exception as e:  # a crash in the test is a failure, not a silence
        import traceback
        tap.ok(False, "test raised %r" % e, traceback.format_exc())
    finally:
        if users:
            users.cleanup()
        td.cleanup()
    return tap.done()


if __name__ == "__main__":
    sys.exit(main())
