#!/usr/bin/python3
"""End to end: README's demo command (scripts/demo) run as a test, each of
its steps asserted from the state it leaves (device 1117 enrolled over MQTT
with the claim certificate among them); then the daemons restarted on that
state for what a stock Python grpcio client and a real mosquitto broker
see."""
import glob
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import tap  # noqa: E402
from sfharness import BUILD, SRC, Client, free_port, protos, run, split_pem  # noqa: E402

import grpc  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402

pb = protos()
P = pb.provisioning
DEVICES = ["1111", "1112", "1113", "1114", "1115", "1116", "1117"]


def spki(pubkey):
    return pubkey.public_bytes(serialization.Encoding.DER,
                               serialization.PublicFormat.SubjectPublicKeyInfo)


def private_keys_in(state):
    """Every file under state that parses as a private key: (path, SPKI)."""
    found = []
    for root, _, files in os.walk(state):
        for n in files:
            p = os.path.join(root, n)
            try:
                if os.path.getsize(p) > 1 << 20 or os.path.islink(p):
                    continue
                with open(p, "rb") as f:
                    data = f.read()
            except OSError:
                continue
            for loader in (serialization.load_pem_private_key, serialization.load_der_private_key):
                try:
                    k = loader(data, password=None)
                    found.append((p, spki(k.public_key())))
                    break
                except Exception:
                    pass
    return found


def token_pubkey(state, dev):
    env = dict(os.environ, SOFTHSM2_CONF=os.path.join(state, "device-token", "softhsm2.conf"))
    return subprocess.run(["openssl", "pkey", "-engine", "pkcs11", "-inform", "engine", "-pubin",
                           "-in", "pkcs11:token=devices;object=%s;type=public" % dev,
                           "-pubout", "-outform", "DER"], env=env, capture_output=True,
                          check=True).stdout


def main():
    tmp = os.path.join("/tmp", "sf-e2e-%d" % os.getpid())
    state = os.path.join(tmp, "state")
    os.makedirs(tmp)
    procs = []
    try:
        env = dict(os.environ, SECRETFREE_DEMO_DIR=state, SECRETFREE_BUILD_DIR=BUILD)
        t0 = time.time()
        p = subprocess.run(["bash", os.path.join(SRC, "scripts", "demo")], env=env,
                           capture_output=True, text=True, timeout=600)
        out = p.stdout
        tap.diag("scripts/demo took %.1f s" % (time.time() - t0))
        if not tap.eq(p.returncode, 0, "scripts/demo exits 0"):
            tap.diag(out[-3000:] + p.stderr[-3000:])
        tap.ok("Demo complete." in out, "the demo says it completed")
        for step in ("Tokens:", "Signer:", "CA hierarchy", "Server certificates", "authz:",
                     "Factory:", "Import", "Enrollment over gRPC:", "Enrollment over REST:",
                     "Verify", "MQTT:", "MQTT provisioning", "Summary"):
            tap.ok(step in out, "the demo reports the step %r" % step)
        tap.eq(len(re.findall(r"device 1[0-9]{3}: OK", out)), 6, "six chains verified in the demo")
        rest = os.path.join(state, "devices", "1116.json")
        tap.ok(os.path.isfile(rest) and '"Certificate"' in open(rest).read()
               and '"CertificateChain"' in open(rest).read(),
               "device 1116 got the reference's JSON over REST (curl, device-csr header)")
        tap.ok(re.search(r"device 1111 published on telemetry/1111; device 1114 received", out),
               "device 1111 published over MQTT and device 1114 received it")
        tap.ok(re.search(r"device 1117 over MQTT: certificate [0-9A-F]+ .* in \d+ chunks, every"
                         r" message at most 1024 bytes .* as announced", out),
               "device 1117 enrolled over MQTT with the claim certificate, in 1 KiB chunks")
        tap.ok(re.search(r"device 1117 connected with its new certificate and published; device"
                         r" 1114 received", out),
               "device 1117's new certificate connects it to the broker")
        tap.ok(os.path.isfile(os.path.join(state, ".secretfree-demo")), "all state in the directory named")

        # Nothing left running, sockets gone.
        ps = run(["ps", "-eo", "args"]).stdout
        tap.ok(state not in ps, "no daemon or broker left running after the demo")
        tap.ok(not glob.glob(os.path.join(state, "run", "*", "*.sock")), "their sockets are removed")

        # No device private key anywhere in the state; each certificate
        # carries the device token's key.
        dev_keys = {d: token_pubkey(state, d) for d in DEVICES}
        keys = private_keys_in(state)
        tap.eq(sorted(os.path.relpath(k[0], state) for k in keys),
               ["claim/claim.key", "tls/authz.key", "tls/broker.key"],
               "the only private key files are the two servers' TLS keys and the shared"
               " claim key")
        tap.ok(not any(k[1] in dev_keys.values() for k in keys),
               "no device private key exists as a file in the demo's state")
        for d in DEVICES:
            with open(os.path.join(state, "devices", d + ".crt"), "rb") as f:
                cert = x509.load_pem_x509_certificate(f.read())
            tap.eq(spki(cert.public_key()), dev_keys[d],
                   "device %s: the certificate's key is the device token's public key" % d)

        # Restart the daemons on the demo's state.
        ca_conf = os.path.join(state, "ca-token", "softhsm2.conf")
        sig = subprocess.Popen([os.path.join(BUILD, "signer", "secretfree-signer"), "-c",
                                os.path.join(state, "signer.conf")],
                               env=dict(os.environ, SOFTHSM2_CONF=ca_conf),
                               stdout=open(os.path.join(tmp, "signer.log"), "w"), stderr=subprocess.STDOUT)
        procs.append(sig)
        for _ in range(100):
            if os.path.exists(os.path.join(state, "run", "issuance", "signer.sock")):
                break
            time.sleep(0.05)
        with open(os.path.join(state, "authz.conf")) as f:
            aconf = f.read()
        port = int(re.search(r"device_listen = 127.0.0.1:(\d+)", aconf).group(1))
        az = subprocess.Popen([os.path.join(BUILD, "authz", "secretfree-authz"), "-c",
                               os.path.join(state, "authz.conf")],
                              stdout=open(os.path.join(tmp, "authz.log"), "w"), stderr=subprocess.STDOUT)
        procs.append(az)
        for _ in range(100):
            if os.path.exists(os.path.join(state, "run", "authz-admin", "authz.sock")):
                break
            time.sleep(0.05)
        time.sleep(0.3)

        # A stock grpcio client enrolls over TCP+TLS and gets what the CLI got.
        with open(os.path.join(state, "tls", "root.pem"), "rb") as f:
            root = f.read()
        cli = Client("localhost:%d" % port, grpc.ssl_channel_credentials(root_certificates=root))
        dev_env = dict(os.environ, SOFTHSM2_CONF=os.path.join(state, "device-token", "softhsm2.conf"))
        pin_file = os.path.join(state, "device-token", "user.pin")
        csr = subprocess.run(["openssl", "req", "-new", "-engine", "pkcs11", "-keyform", "engine",
                              "-key", "pkcs11:token=devices;object=1112;type=private;pin-source=file:" + pin_file,
                              "-subj", "/CN=1112"], env=dev_env, capture_output=True, check=True).stdout
        r = cli.call("Provisioning", "Enroll", P.EnrollRequest(csr=csr, idempotency_key="first-boot-1112"),
                     P.EnrollResponse)
        with open(os.path.join(state, "devices", "1112.crt")) as f:
            cli_cert = f.read()
        tap.eq(r.certificate_pem.strip(), cli_cert.strip(),
               "grpcio Enroll with the CLI's idempotency key: the same certificate the CLI got")
        tap.ok(r.replayed, "flagged as a replay")
        with open(os.path.join(state, "devices", "1112-chain.pem")) as f:
            tap.eq(r.chain_pem.strip(), f.read().strip(), "and the same chain")

        # A new device through grpcio: factory step with pkcs11-tool, import
        # with the CLI, enrollment with grpcio.
        p11 = ["pkcs11-tool", "--module", "/usr/lib/softhsm/libsofthsm2.so", "--token-label", "devices"]
        with open(pin_file) as f:
            pin = f.read().strip()
        run(p11 + ["--login", "--pin", pin, "--keypairgen", "--key-type", "EC:prime256v1",
                   "--label", "1118", "--id", "1118"], env=dev_env)
        pem = os.path.join(tmp, "keys")
        os.makedirs(pem)
        with open(os.path.join(pem, "1118.der"), "wb") as f:
            f.write(token_pubkey(state, "1118"))
        run(["openssl", "pkey", "-pubin", "-inform", "DER", "-in", os.path.join(pem, "1118.der"),
             "-out", os.path.join(pem, "1118.pem")])
        os.unlink(os.path.join(pem, "1118.der"))
        sf_env = dict(os.environ, SECRETFREE_SIGNER="unix:%s/run/admin/signer.sock" % state,
                      SECRETFREE_AUTHZ="unix:%s/run/authz-admin/authz.sock" % state)
        imp = run([os.path.join(BUILD, "client", "secretfree"), "device", "import", pem,
                   "--product-line", "widgiot", "--region", "eu-west-1"], env=sf_env, check=False)
        tap.eq(imp.returncode, 0, "secretfree device import of a directory of PEM keys", imp.stderr)
        csr = subprocess.run(["openssl", "req", "-new", "-engine", "pkcs11", "-keyform", "engine",
                              "-key", "pkcs11:token=devices;object=1118;type=private;pin-source=file:" + pin_file,
                              "-subj", "/CN=1118", "-outform", "DER"], env=dev_env,
                             capture_output=True, check=True).stdout
        r = cli.call("Provisioning", "Enroll", P.EnrollRequest(csr=csr), P.EnrollResponse)
        cert = x509.load_pem_x509_certificate(r.certificate_pem.encode())
        tap.eq(spki(cert.public_key()), token_pubkey(state, "1118"),
               "grpcio enrollment of a new device: certificate for its token key")
        tap.ok("eu-west-1.widgiot" in cert.issuer.rfc4514_string(), "issued by its region's CA")
        cli.close()

        # mosquitto admits our chain and refuses another CA's certificate.
        conf = os.path.join(tmp, "mosquitto.conf")
        with open(os.path.join(state, "mqtt", "mosquitto.conf")) as f:
            mconf = f.read()
        # Each listener on a port of its own; the first is the devices'.
        mconf = re.sub(r"listener \d+ ", lambda m: "listener %d " % free_port(), mconf)
        mport = int(re.search(r"listener (\d+) ", mconf).group(1))
        with open(conf, "w") as f:
            f.write(mconf)
        mlog = os.path.join(tmp, "mosquitto.log")
        mq = subprocess.Popen(["mosquitto", "-c", conf], stdout=open(mlog, "w"), stderr=subprocess.STDOUT)
        procs.append(mq)
        time.sleep(0.8)
        ok_uri = "pkcs11:token=devices;object=1113;type=private;pin-source=file:user.pin"
        cwd = os.path.join(state, "device-token")
        open(os.path.join(cwd, ok_uri), "w").close()
        good = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(mport), "--cafile",
                               os.path.join(state, "tls", "root.pem"), "--cert",
                               os.path.join(state, "devices", "1113.crt"), "--keyform", "engine",
                               "--tls-engine", "pkcs11", "--key", ok_uri, "-t", "telemetry/1113", "-m", "x"],
                              env=dev_env, cwd=cwd, capture_output=True, text=True, timeout=30)
        tap.eq(good.returncode, 0, "mosquitto accepts device 1113's certificate (RSA key in the token)",
               good.stderr)
        os.unlink(os.path.join(cwd, ok_uri))
        ok_, okey, ocrt = os.path.join(tmp, "other-ca"), os.path.join(tmp, "o.key"), os.path.join(tmp, "o.crt")
        run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", ok_ + ".key", "-out", ok_ + ".crt", "-days", "2", "-subj", "/CN=Other CA",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", okey, "-subj", "/CN=1111", "-out", ocrt + ".csr"])
        run(["openssl", "x509", "-req", "-in", ocrt + ".csr", "-CA", ok_ + ".crt", "-CAkey", ok_ + ".key",
             "-CAcreateserial", "-days", "1", "-out", ocrt])
        bad = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(mport), "--cafile",
                              os.path.join(state, "tls", "root.pem"), "--cert", ocrt, "--key", okey,
                              "-t", "telemetry/1111", "-m", "spoof"], capture_output=True, text=True, timeout=30)
        tap.ok(bad.returncode != 0, "mosquitto refuses a certificate (CN=1111) from another CA", bad.stdout + bad.stderr)
    except Exception as e:
        import traceback
        tap.ok(False, "test raised %r" % e, traceback.format_exc())
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    return tap.done()


if __name__ == "__main__":
    sys.exit(main())
