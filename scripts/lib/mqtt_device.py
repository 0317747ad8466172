#!/usr/bin/python3
"""A device enrolling over MQTT through authz's [mqtt] door, as
scripts/demo runs it (paho-mqtt, MQTT 3.1.1, TLS).

It connects with the certificate it has (the shared claim certificate,
or its own), with its device id as client id; subscribes to
<prefix>/<id>/cert; publishes its CSR on <prefix>/<id>/csr asking for
chunks of --chunk-size bytes; and reassembles them as a device with a
buffer of that size would: every message must fit the buffer, each
chunk's data is written at its offset and fed to a running SHA-256,
which must be the one announced. Then it writes the certificate and the
chain. Exit 0 on success; 1 (with the status authz sent) otherwise.

  mqtt_device.py --port 8884 --cafile root.pem --cert claim.crt \\
      --key claim.key --id 1116 --csr 1116.csr --chunk-size 1024 \\
      --out 1116.crt --chain-out 1116-chain.pem
"""
import argparse
import base64
import hashlib
import json
import queue
import sys
import time

import paho.mqtt.client as mqtt


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cafile", required=True, help="verifies the broker")
    ap.add_argument("--cert", required=True, help="the client certificate")
    ap.add_argument("--key", required=True, help="its key (PEM file)")
    ap.add_argument("--id", required=True, help="the device id (client id)")
    ap.add_argument("--csr", required=True, help="the CSR (PEM file)")
    ap.add_argument("--chunk-size", type=int, default=1024)
    ap.add_argument("--prefix", default="secretfree/provisioning")
    ap.add_argument("--out", required=True)
    ap.add_argument("--chain-out", required=True)
    ap.add_argument("--timeout", type=float, default=30)
    a = ap.parse_args()

    got = queue.Queue()
    ready = queue.Queue()
    c = mqtt.Client(client_id=a.id, protocol=mqtt.MQTTv311, clean_session=True)
    c.tls_set(ca_certs=a.cafile, certfile=a.cert, keyfile=a.key)
    c.on_connect = lambda cl, u, f, rc: ready.put(("connect", rc))
    c.on_subscribe = lambda cl, u, mid, q: ready.put(("subscribe", q[0]))
    c.on_message = lambda cl, u, m: got.put(m.payload)
    c.connect(a.host, a.port, keepalive=30)
    c.loop_start()
    try:
        what, rc = ready.get(timeout=a.timeout)
        if rc != 0:
            print("the broker refused the connection: %s" % mqtt.connack_string(rc))
            return 1
        c.subscribe("%s/%s/cert" % (a.prefix, a.id), 1)
        what, q = ready.get(timeout=a.timeout)
        with open(a.csr) as f:
            req = {"id": "boot-%d" % int(time.time()), "csr": f.read(),
                   "idempotency_key": "first-boot-" + a.id, "chunk_size": a.chunk_size}
        c.publish("%s/%s/csr" % (a.prefix, a.id), json.dumps(req), qos=1)

        buf = bytearray(a.chunk_size)     # the device's receive buffer

        def receive():
            raw = got.get(timeout=a.timeout)
            if len(raw) > len(buf):
                raise ValueError("a message of %d bytes does not fit the %d-byte buffer"
                                 % (len(raw), len(buf)))
            buf[:len(raw)] = raw
            return json.loads(bytes(buf[:len(raw)])), len(raw)

        head, n = receive()
        if head.get("type") == "error":
            print("authz refused: %s (%s, %s)" % (head["message"], head["status"], head["code"]))
            return 1
        storage = bytearray(head["total"])    # where the bundle is stored
        sha = hashlib.sha256()
        longest = n
        for i in range(head["chunks"]):
            chunk, n = receive()
            longest = max(longest, n)
            if chunk.get("type") != "chunk" or chunk["index"] != i:
                raise ValueError("expected chunk %d, got %r" % (i, chunk))
            data = base64.b64decode(chunk["data"], validate=True)
            storage[chunk["offset"]:chunk["offset"] + len(data)] = data
            sha.update(data)
        if sha.hexdigest() != head["sha256"]:
            print("SHA-256 mismatch: the certificate is not what authz sent")
            return 1
        text = bytes(storage).decode()
        end = text.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----\n")
        with open(a.out, "w") as f:
            f.write(text[:end])
        with open(a.chain_out, "w") as f:
            f.write(text[end:])
        print("certificate %s (enrollment %s): %d bytes in %d chunks, every message at most"
              " %d bytes (longest %d), SHA-256 %s... as announced"
              % (head["serial"], head["enrollment_id"], head["total"], head["chunks"],
                 a.chunk_size, longest, head["sha256"][:16]))
        return 0
    except queue.Empty:
        print("no answer within %.0f s" % a.timeout)
        return 1
    finally:
        c.loop_stop()
        c.disconnect()


if __name__ == "__main__":
    sys.exit(main())
