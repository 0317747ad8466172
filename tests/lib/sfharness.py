"""Test harness: real SoftHSM2 tokens, real daemons on temporary sockets,
stock Python grpcio with messages generated at test time from proto/.

Paths come from the environment meson sets (SF_SOURCE_ROOT, SF_BUILD_ROOT).
"""
import importlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import grpc

SRC = os.environ.get("SF_SOURCE_ROOT") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("SF_BUILD_ROOT") or os.path.join(SRC, "build")
SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
# Volume tests scale their counts by this (scripts/test --tsan sets 0.1:
# under ThreadSanitizer it is the concurrency that matters, not 10,000
# issuances at a tenth of the speed).
SCALE = float(os.environ.get("SF_TEST_SCALE") or "1")

_pb = None


def protos():
    """The secretfree.v1 message modules, generated once per process."""
    global _pb
    if _pb is not None:
        return _pb
    out = tempfile.mkdtemp(prefix="sf-pb-")
    files = ["secretfree/v1/%s.proto" % n for n in
             ("common", "signer", "ca_admin", "provisioning", "registry")]
    subprocess.run(["protoc", "--python_out=" + out, "-I",
                    os.path.join(SRC, "proto")] + files, check=True)
    sys.path.insert(0, out)

    class PB:
        pass
    _pb = PB()
    for n in ("common", "signer", "ca_admin", "provisioning", "registry"):
        setattr(_pb, n, importlib.import_module("secretfree.v1.%s_pb2" % n))
    return _pb


class RpcError(Exception):
    def __init__(self, code, details):
        super().__init__("%s: %s" % (code.name, details))
        self.code = code
        self.details = details


class Client:
    """Generic unary calls on one channel: call("CaAdmin", "ListCas", req)."""

    def __init__(self, target, creds=None, options=None):
        if creds is None:
            self.channel = grpc.insecure_channel(target, options=options or [])
        else:
            self.channel = grpc.secure_channel(target, creds, options=options or [])

    def call(self, service, method, request, response_type, timeout=30):
        fn = self.channel.unary_unary(
            "/secretfree.v1.%s/%s" % (service, method),
            request_serializer=lambda m: m if isinstance(m, bytes) else m.SerializeToString(),
            response_deserializer=response_type.FromString)
        try:
            return fn(request, timeout=timeout)
        except grpc.RpcError as e:
            raise RpcError(e.code(), e.details())

    def stream(self, service, method, request, response_type, timeout=30):
        fn = self.channel.unary_stream(
            "/secretfree.v1.%s/%s" % (service, method),
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response_type.FromString)
        try:
            return list(fn(request, timeout=timeout))
        except grpc.RpcError as e:
            raise RpcError(e.code(), e.details())

    def close(self):
        self.channel.close()


def expect_error(fn, code):
    """Run fn; return the RpcError if it failed with code, else None."""
    try:
        fn()
    except RpcError as e:
        return e if e.code == code else None
    return None


def run(cmd, check=True, **kw):
    return subprocess.run(cmd, check=check, capture_output=True, text=True, **kw)


class Token:
    """A SoftHSM2 token made by tokens/softhsm-init in dir."""

    def __init__(self, dir, label="secretfree"):
        self.dir = dir
        self.label = label
        out = run([os.path.join(SRC, "tokens", "softhsm-init"), dir, "--label", label])
        line = [l for l in out.stdout.splitlines() if l.startswith("SOFTHSM2_CONF=")][0]
        self.conf = line.split("=", 1)[1]
        self.pin_file = os.path.join(dir, "user.pin")

    def pin(self):
        with open(self.pin_file) as f:
            return f.read().strip()

    def env(self):
        e = dict(os.environ)
        e["SOFTHSM2_CONF"] = self.conf
        return e


SIGNER_CONF = """\
[signer]
user = {user}
journal = {dir}/signer/journal.db
issuance_socket = unix:{dir}/run/issuance/signer.sock
admin_socket = unix:{dir}/run/admin/signer.sock
workers = 4
log_level = {log_level}

[token]
module = {module}
uri = pkcs11:token={label}
pin_file = {pin_file}
sessions = 4

[limits]
device_certs_per_window = {device_max}
device_window_seconds = 3600
global_per_second = {global_rate}
global_burst = {global_burst}
device_live_certificates = {device_live}
{limits_extra}
[defaults]
organization = Automatra
country = US
domain = automatra.net
crl_url = http://crl.automatra.net/${{name}}.crl
ocsp_url = http://ocsp.automatra.net/${{name}}
ca_issuers_url = http://ca.automatra.net/${{name}}.crt

[root]
key_type = ec-p384

[product.widgiot]
display_name = WidgIoT
device_subject = /C=US/ST=VA/L=Anywhere/O=Automatra/OU=WidgIoT/CN=${{device_id}}
device_validity_days = 365
{extra}
"""


def current_user():
    """The name of the user running the tests: a daemon's [signer] user /
    [authz] user in the templates. As root that is "root", which a daemon
    started as root needs to stay root on purpose; as anyone else it is a
    no-op (the daemon runs as that user)."""
    import pwd
    return pwd.getpwuid(os.geteuid()).pw_name


class Daemon:
    """A secretfree daemon from the build tree, started on a configuration
    written from a template into dir, logging to dir/NAME.log.

    A subclass sets name ("signer": build/signer/secretfree-signer) and
    conf_template, and says by ready() when the daemon is serving."""

    name = None
    conf_template = None
    # Put before the program (["valgrind", "--tool=callgrind", ...]).
    prefix = []

    def __init__(self, dir, params):
        self.dir = dir
        os.makedirs(os.path.join(dir, self.name), exist_ok=True)
        self.conf_path = os.path.join(dir, "%s.conf" % self.name)
        self.log_path = os.path.join(dir, "%s.log" % self.name)
        self.params = params
        self.proc = None
        self.write_conf()

    def write_conf(self, **changes):
        self.params.update(changes)
        with open(self.conf_path, "w") as f:
            f.write(self.conf_template.format(**self.params))

    def env(self):
        """The daemon's environment: None for this process's own."""
        return None

    def ready(self):
        raise NotImplementedError

    def start(self, timeout=15):
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            self.prefix + [os.path.join(BUILD, self.name, "secretfree-" + self.name),
                           "-c", self.conf_path],
            env=self.env(), stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited: %s" % (self.name, self.log_text()))
            if self.ready():
                return self
            time.sleep(0.05)
        raise RuntimeError("%s did not start: %s" % (self.name, self.log_text()))

    def log_text(self):
        try:
            with open(self.log_path) as f:
                return f.read()
        except OSError:
            return ""

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=20):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode
        self.proc = None
        self.log.close()
        return rc


class Signer(Daemon):
    """A secretfree-signer on temporary sockets, with its own token."""

    name = "signer"
    conf_template = SIGNER_CONF

    def __init__(self, dir, token, device_max=1000, global_rate=100000,
                 global_burst=100000, extra="", log_level="info",
                 module=SOFTHSM_MODULE, env=None, limits_extra="", device_live=2,
                 user=None):
        self.token = token
        self.extra_env = env or {}
        self.issuance = "unix:%s/run/issuance/signer.sock" % dir
        self.admin = "unix:%s/run/admin/signer.sock" % dir
        self.journal = os.path.join(dir, "signer", "journal.db")
        super().__init__(dir, dict(
            dir=dir, module=module, label=token.label, pin_file=token.pin_file,
            device_max=device_max, global_rate=global_rate,
            global_burst=global_burst, extra=extra, log_level=log_level,
            limits_extra=limits_extra, device_live=device_live,
            user=user or current_user()))

    def env(self):
        return dict(self.token.env(), **self.extra_env)

    def ready(self):
        # Both sockets bound; a moment more for the listeners to start.
        if all(os.path.exists(a[5:]) for a in (self.issuance, self.admin)):
            time.sleep(0.05)
            return True
        return False

    def admin_client(self):
        return Client(self.admin)

    def issuance_client(self):
        return Client(self.issuance)


def build_hierarchy(admin, regions=("us-east-1", "eu-west-1"), product="widgiot",
                    key_types=None):
    """root -> product intermediate -> one issuing CA per region, via CaAdmin."""
    pb = protos()
    c = pb.common
    key_types = key_types or {}
    out = {}
    r = admin.call("CaAdmin", "CreateCa", pb.ca_admin.CreateCaRequest(
        role=c.CA_ROLE_ROOT, key_type=key_types.get("root", 0)),
        pb.ca_admin.CreateCaResponse)
    out["root"] = r.ca
    r = admin.call("CaAdmin", "CreateCa", pb.ca_admin.CreateCaRequest(
        role=c.CA_ROLE_INTERMEDIATE, product_line=product,
        key_type=key_types.get(product, 0)), pb.ca_admin.CreateCaResponse)
    out[product] = r.ca
    for reg in regions:
        name = "%s.%s" % (reg, product)
        r = admin.call("CaAdmin", "CreateCa", pb.ca_admin.CreateCaRequest(
            role=c.CA_ROLE_ISSUING, product_line=product, region=reg,
            key_type=key_types.get(name, 0)), pb.ca_admin.CreateCaResponse)
        out[name] = r.ca
    return out


KEYGEN = {
    "rsa-1024": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"],
    "rsa-2048": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
    "rsa-4096": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:4096"],
    "ec-p256": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
    "ec-p384": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
    "ed25519": ["-algorithm", "ED25519"],
}


class Device:
    """A simulated device: a key made at test time with openssl."""

    def __init__(self, dir, device_id, key_type="ec-p256"):
        self.id = device_id
        self.key_type = key_type
        self.key = os.path.join(dir, "%s.key" % device_id)
        self.pub = os.path.join(dir, "%s.pem" % device_id)
        run(["openssl", "genpkey"] + KEYGEN[key_type] + ["-out", self.key])
        os.chmod(self.key, 0o600)
        run(["openssl", "pkey", "-in", self.key, "-pubout", "-out", self.pub])

    def spki_der(self):
        return run_bytes(["openssl", "pkey", "-in", self.key, "-pubout", "-outform", "DER"])

    def csr(self, cn=None, extra=(), der=False):
        cmd = ["openssl", "req", "-new", "-key", self.key, "-subj",
               "/CN=%s" % (cn or self.id)] + list(extra)
        if der:
            cmd += ["-outform", "DER"]
        return run_bytes(cmd)


def run_bytes(cmd):
    return subprocess.run(cmd, check=True, capture_output=True).stdout


def openssl_verify(dir, chain_pem, leaf_pem, extra=()):
    """openssl verify -x509_strict with the chain's last cert as the anchor."""
    certs = split_pem(chain_pem)
    root = os.path.join(dir, "v-root.pem")
    untrusted = os.path.join(dir, "v-untrusted.pem")
    leaf = os.path.join(dir, "v-leaf.pem")
    with open(root, "w") as f:
        f.write(certs[-1])
    with open(untrusted, "w") as f:
        f.write("".join(certs[:-1]) or certs[-1])
    with open(leaf, "w") as f:
        f.write(leaf_pem)
    p = run(["openssl", "verify", "-x509_strict", "-CAfile", root,
             "-untrusted", untrusted] + list(extra) + [leaf], check=False)
    return p.returncode == 0, p.stdout + p.stderr


def split_pem(text):
    out, cur = [], []
    for line in text.splitlines(True):
        cur.append(line)
        if line.startswith("-----END"):
            out.append("".join(cur))
            cur = []
    return out


class TempDir:
    """A temporary directory; memory=True puts it on /dev/shm when there is
    one (fsync costs nothing there: for tests of scale, not durability)."""

    def __init__(self, prefix, memory=False):
        shm = "/dev/shm" if memory and os.access("/dev/shm", os.W_OK) else None
        self.path = tempfile.mkdtemp(prefix=prefix, dir=shm)

    def cleanup(self):
        shutil.rmtree(self.path, ignore_errors=True)


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


AUTHZ_CONF = """\
[authz]
user = {user}
registry = {dir}/authz/registry.db
signer_socket = {signer_socket}
signer_timeout_ms = {signer_timeout_ms}
admin_socket = unix:{dir}/run/authz-admin/authz.sock
device_listen = 127.0.0.1:{port}
tls_cert = {tls_cert}
tls_key = {tls_key}
default_region = {default_region}
workers = 8
log_level = info
{authz_extra}
[limits]
csr_max_bytes = {csr_max}
device_requests_per_window = {device_max}
device_window_seconds = 3600

[http]
listen = 127.0.0.1:{http_port}
{http_extra}

[template.widgiot]
thing_group = widgiot-devices
policies = widgiot-telemetry
attributes = serialNumber=${{device_id}}, region=${{region}}

[policy.widgiot-telemetry]
document = {{"Version": "2012-10-17", "Statement": [{{"Effect": "Allow", "Action": "iot:Publish", "Resource": "telemetry/${{device_id}}"}}]}}
"""


class Authz(Daemon):
    """A secretfree-authz on a TLS loopback port and a temporary admin socket."""

    name = "authz"
    conf_template = AUTHZ_CONF

    def __init__(self, dir, signer, tls_cert, tls_key, default_region="us-east-1",
                 device_max=1000, csr_max=16384, http_extra="", signer_timeout_ms=10000,
                 authz_extra="", user=None):
        self.port = free_port()
        self.http_port = free_port()
        self.http = "http://127.0.0.1:%d" % self.http_port
        self.admin = "unix:%s/run/authz-admin/authz.sock" % dir
        self.device = "localhost:%d" % self.port
        self.registry = os.path.join(dir, "authz", "registry.db")
        super().__init__(dir, dict(
            dir=dir, signer_socket=signer.issuance, port=self.port,
            http_port=self.http_port,
            tls_cert=tls_cert, tls_key=tls_key, default_region=default_region,
            device_max=device_max, csr_max=csr_max, http_extra=http_extra,
            signer_timeout_ms=signer_timeout_ms, authz_extra=authz_extra,
            user=user or current_user()))

    def ready(self):
        return os.path.exists(self.admin[5:]) and "serving" in self.log_text()

    def admin_client(self):
        return Client(self.admin)

    def http_get(self, path, timeout=10):
        """GET path on authz's [http] listener: (status, headers, body)."""
        import urllib.error
        import urllib.request
        try:
            with urllib.request.urlopen(self.http + path, timeout=timeout) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def http_post(self, path, body, content_type, timeout=10):
        """POST body to path on authz's [http] listener: (status, headers, body)."""
        import urllib.error
        import urllib.request
        req = urllib.request.Request(self.http + path, data=body, method="POST",
                                     headers={"Content-Type": content_type})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def device_client(self, root_pem):
        creds = grpc.ssl_channel_credentials(root_certificates=root_pem.encode())
        return Client(self.device, creds)


def server_cert(admin, dir, name, dns=("localhost",), ips=("127.0.0.1",)):
    """A TLS key (made here) and its certificate from the signer's server profile."""
    pb = protos()
    key = os.path.join(dir, name + ".key")
    run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-out", key])
    os.chmod(key, 0o600)
    csr = run_bytes(["openssl", "req", "-new", "-key", key, "-subj", "/CN=" + dns[0]])
    r = admin.call("CaAdmin", "IssueServerCertificate", pb.ca_admin.IssueServerCertificateRequest(
        csr=csr, dns_names=list(dns), ip_addresses=list(ips)),
        pb.ca_admin.IssueServerCertificateResponse)
    crt = os.path.join(dir, name + ".crt")
    with open(crt, "w") as f:
        f.write(r.certificate_pem + r.chain_pem)
    root = split_pem(r.chain_pem)[-1]
    return key, crt, root


# ---- the CLI and a whole stack, for the lifecycle tests ----

CLI_PATH = os.environ.get("SF_CLI") or os.path.join(BUILD, "client", "secretfree")
CLI_TARGET_ENV = ("SECRETFREE_SIGNER", "SECRETFREE_AUTHZ", "SECRETFREE_ENDPOINT",
                  "SECRETFREE_CONFIG")


class Cli:
    """Runs the secretfree CLI with a clean environment (no user
    configuration) plus the targets given in env."""

    def __init__(self, tmp, env=None):
        self.env = {k: v for k, v in os.environ.items() if k not in CLI_TARGET_ENV}
        self.env["HOME"] = tmp
        self.env.pop("XDG_CONFIG_HOME", None)
        self.env.update(env or {})

    def __call__(self, *args, env=None, input=None, timeout=120):
        e = dict(self.env)
        e.update(env or {})
        return subprocess.run([CLI_PATH] + [str(a) for a in args], capture_output=True,
                              text=True, env=e, input=input, timeout=timeout)


def stop_process(proc):
    """SIGTERM a child still running, SIGKILL it after 10 s; reaped."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def show(p):
    """A finished CLI run as text, for a failed check's diagnostics."""
    return "rc=%d\nstdout:\n%s\nstderr:\n%s" % (p.returncode, p.stdout, p.stderr)


class Stack:
    """A SoftHSM2 token; a signer with root -> widgiot -> one issuing CA per
    region; authz with its TLS device listener, admin socket and [http]
    listener; admin clients for both; a Cli pointed at both admin sockets.
    stop() stops the daemons; the caller removes tmp."""

    def __init__(self, tmp, regions=("us-east-1", "eu-west-1"), signer_extra="",
                 device_max=1000, signer_kw=None, authz_kw=None):
        self.tmp = tmp
        self.token = Token(os.path.join(tmp, "token"))
        self.signer = Signer(tmp, self.token, device_max=device_max, extra=signer_extra,
                             **(signer_kw or {})).start()
        self.sadmin = self.signer.admin_client()
        self.cas = build_hierarchy(self.sadmin, regions=regions)
        self.tls_key, self.tls_crt, self.root_pem = server_cert(self.sadmin, tmp, "authz")
        self.authz = Authz(tmp, self.signer, self.tls_crt, self.tls_key,
                           **(authz_kw or {})).start()
        self.aadmin = self.authz.admin_client()
        self.device = self.authz.device_client(self.root_pem)
        self.cli = Cli(tmp, {"SECRETFREE_SIGNER": self.signer.admin,
                             "SECRETFREE_AUTHZ": self.authz.admin})

    def register(self, devices, region=""):
        """Register Device objects in the signer, then authz (as the CLI does)."""
        pb = protos()
        recs = [pb.common.DeviceKeyRecord(device_id=d.id, spki_der=d.spki_der(),
                                          product_line="widgiot", region=region,
                                          line=i + 1)
                for i, d in enumerate(devices)]
        s = self.sadmin.call("CaAdmin", "RegisterDeviceKeys",
                             pb.ca_admin.RegisterDeviceKeysRequest(records=recs),
                             pb.common.ImportResult)
        a = self.aadmin.call("Registry", "ImportDevices",
                             pb.registry.ImportDevicesRequest(records=recs),
                             pb.common.ImportResult)
        return s, a

    def enroll(self, device, key="", region="", client=None):
        """Provisioning.Enroll over TLS with a fresh CSR of device."""
        pb = protos()
        return (client or self.device).call(
            "Provisioning", "Enroll",
            pb.provisioning.EnrollRequest(csr=device.csr(), idempotency_key=key,
                                          region=region),
            pb.provisioning.EnrollResponse)

    def stop(self):
        for d in (self.authz, self.signer):
            if d is not None:
                d.stop()


# ---- an MQTT broker for authz's MQTT door ----

class Mosquitto:
    """A mosquitto broker on free loopback ports, configured by `secretfree
    mqtt config` (so that the configuration the CLI prints is the one
    tested): a devices listener (client certificates from cafile), a claim
    listener (claim_cafile, if given) and authz's service listener (TLS and
    a password made here, in the broker's hashed file and authz's plain
    one). All in dir; logs to dir/mosquitto.log."""

    def __init__(self, dir, cafile, certfile, keyfile, claim_cafile=None,
                 crlfile=None, prefix="secretfree/provisioning"):
        import secrets
        self.dir = dir
        os.makedirs(dir, exist_ok=True)
        self.port, self.claim_port, self.service_port = free_port(), free_port(), free_port()
        self.prefix = prefix
        self.user = "secretfree-authz"
        self.password_file = os.path.join(dir, "mqtt-password")
        with open(self.password_file, "w") as f:
            f.write(secrets.token_hex(16) + "\n")
        os.chmod(self.password_file, 0o600)
        args = [CLI_PATH, "mqtt", "config", "--cafile", cafile, "--certfile", certfile,
                "--keyfile", keyfile, "--listen", "127.0.0.1:%d" % self.port,
                "--claim-listen", "127.0.0.1:%d" % self.claim_port,
                "--service-listen", "127.0.0.1:%d" % self.service_port,
                "--topic-prefix", prefix, "--password-file", self.password_file,
                "--out-dir", dir]
        if claim_cafile:
            args += ["--claim-cafile", claim_cafile]
        if crlfile:
            args += ["--crlfile", crlfile]
        self.config_run = run(args)
        with open(self.password_file) as f:
            pw = f.read().strip()
        run(["mosquitto_passwd", "-c", "-b", os.path.join(dir, "service.passwd"),
             self.user, pw])
        self.conf = os.path.join(dir, "mosquitto.conf")
        with open(self.conf, "a") as f:
            # Started as root, mosquitto would become user mosquitto and
            # lose the temporary files; stay who we are.
            import pwd
            f.write("user %s\n" % pwd.getpwuid(os.getuid()).pw_name)
        self.log_path = os.path.join(dir, "mosquitto.log")
        self.proc = None

    def authz_section(self):
        """The [mqtt] section for authz, as the CLI wrote it."""
        with open(os.path.join(self.dir, "authz-mqtt.conf")) as f:
            return f.read()

    def start(self, timeout=10):
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen(["mosquitto", "-c", self.conf],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("mosquitto exited: " + self.log_text())
            if " running" in self.log_text():
                return self
            time.sleep(0.05)
        raise RuntimeError("mosquitto did not start: " + self.log_text())

    def log_text(self):
        try:
            with open(self.log_path) as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        if self.proc is None:
            return
        stop_process(self.proc)
        self.proc = None
        self.log.close()


class MqttDevice:
    """A device's MQTT connection (paho-mqtt 1.6, MQTT 3.1.1, TLS) with
    every message it receives kept in order, and the outcome of each
    subscription."""

    def __init__(self, port, ca_pem_file, cert=None, key=None, client_id=""):
        import queue
        import paho.mqtt.client as mqtt
        self.got = queue.Queue()
        self.granted = {}
        self.connack = []
        self.c = mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv311,
                             clean_session=True)
        self.c.tls_set(ca_certs=ca_pem_file, certfile=cert, keyfile=key)
        self.c.on_message = lambda c, u, m: self.got.put((m.topic, m.payload))
        self.c.on_subscribe = lambda c, u, mid, q: self.granted.__setitem__(mid, q)
        self.c.on_connect = lambda c, u, f, rc: self.connack.append(rc)
        self.c.connect("127.0.0.1", port, keepalive=30)
        self.c.loop_start()
        deadline = time.time() + 10
        while not self.connack and time.time() < deadline:
            time.sleep(0.02)

    def connected(self):
        return self.connack[:1] == [0] and self.c.is_connected()

    def subscribe(self, topic, timeout=5):
        """Subscribe with QoS 1; the granted QoS (128: refused), or None."""
        rc, mid = self.c.subscribe(topic, 1)
        deadline = time.time() + timeout
        while mid not in self.granted and time.time() < deadline:
            time.sleep(0.02)
        g = self.granted.get(mid)
        return g[0] if g else None

    def publish(self, topic, payload):
        info = self.c.publish(topic, payload, qos=1)
        info.wait_for_publish(5)
        return info

    def next(self, timeout=15):
        """The next message received: (topic, payload bytes), or None."""
        import queue
        try:
            return self.got.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()
