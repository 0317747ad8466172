#!/usr/bin/python3
"""Interop: a stock Python grpcio client calls the test service served by
the rpc layer (common/rpc*.c), over a Unix socket and over TCP with TLS, with
generic calls and messages generated at test time by `protoc --python_out`.
Proof that the wire is real gRPC, and that statuses and limits come out as
gRPC defines."""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import tap  # noqa: E402

import grpc  # noqa: E402

SRC = os.environ["SF_SOURCE_ROOT"]
SERVER = os.environ["SF_ECHO_SERVER"]


def gen_messages(tmp):
    out = os.path.join(tmp, "py")
    os.makedirs(out)
    subprocess.run(["protoc", "--python_out=" + out,
                    "-I", os.path.join(SRC, "tests", "proto"),
                    "secretfree/test/v1/echo.proto"], check=True)
    sys.path.insert(0, out)
    from secretfree.test.v1 import echo_pb2
    return echo_pb2


def make_cert(tmp, name):
    key = os.path.join(tmp, name + ".key")
    crt = os.path.join(tmp, name + ".crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec",
                    "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", key, "-out", crt, "-days", "2",
                    "-subj", "/CN=" + name,
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    return key, crt


def main():
    tmp = tempfile.mkdtemp(prefix="sf-interop-")
    proc = None
    try:
        pb = gen_messages(tmp)
        skey, scrt = make_cert(tmp, "server")
        ckey, ccrt = make_cert(tmp, "client")
        sock = os.path.join(tmp, "run", "echo.sock")
        proc = subprocess.Popen([SERVER, "--unix", sock, "--tcp", "127.0.0.1:0",
                                 "--cert", scrt, "--key", skey,
                                 "--client-ca", ccrt],
                                stdout=subprocess.PIPE, text=True)
        line = proc.stdout.readline().strip()
        tap.ok(line.startswith("READY port="), "echo-server starts", line)
        port = int(line.split("=")[1])

        ser = lambda m: m.SerializeToString()  # noqa: E731
        raw = lambda b: b  # noqa: E731

        def unary(ch, method, req_type=None, resp=pb.EchoReply, serializer=ser):
            return ch.unary_unary("/secretfree.test.v1.Echo/" + method,
                                  request_serializer=serializer,
                                  response_deserializer=resp.FromString)

        uch = grpc.insecure_channel("unix:" + sock)
        r = unary(uch, "Say")(pb.EchoRequest(text="héllo 🔑", data=b"\x00\x01\xff",
                                             tags=["a", "b"]), timeout=5)
        tap.eq(r.text, "héllo 🔑", "unix: unary round trip, UTF-8 text")
        tap.eq(r.data, b"\x00\x01\xff", "unix: bytes unchanged")
        tap.eq(list(r.tags), ["a", "b"], "unix: repeated strings")
        r = unary(uch, "Whoami")(pb.EchoRequest(), timeout=5)
        tap.eq(r.uid, os.getuid(), "unix: server sees our uid through SO_PEERCRED")

        for code, name in [(3, "INVALID_ARGUMENT"), (5, "NOT_FOUND"),
                           (7, "PERMISSION_DENIED"), (8, "RESOURCE_EXHAUSTED"),
                           (14, "UNAVAILABLE")]:
            try:
                unary(uch, "Fail")(pb.FailRequest(code=code, message="because " + name),
                                   timeout=5)
                tap.ok(False, "Fail(%s) raises" % name)
            except grpc.RpcError as e:
                tap.eq(e.code(), getattr(grpc.StatusCode, name),
                       "status %s reaches grpcio" % name)
                tap.eq(e.details(), "because " + name, "details reach grpcio")

        def expect(fn, code, what):
            try:
                fn()
                tap.ok(False, what, "call succeeded")
            except grpc.RpcError as e:
                tap.eq(e.code(), code, what)

        expect(lambda: uch.unary_unary("/secretfree.test.v1.Echo/Nope")(b"", timeout=5),
               grpc.StatusCode.UNIMPLEMENTED, "unknown method: UNIMPLEMENTED")
        expect(lambda: uch.unary_unary("/secretfree.test.v1.Other/Ping")(b"", timeout=5),
               grpc.StatusCode.PERMISSION_DENIED,
               "service not served on this listener: PERMISSION_DENIED")
        expect(lambda: unary(uch, "Say", serializer=raw)(b"\x0a\x05ab", timeout=5),
               grpc.StatusCode.INVALID_ARGUMENT, "malformed body: INVALID_ARGUMENT")
        expect(lambda: unary(uch, "Say", serializer=raw)(b"\x0a\x02\xff\xfe", timeout=5),
               grpc.StatusCode.INVALID_ARGUMENT, "invalid UTF-8 string: INVALID_ARGUMENT")
        expect(lambda: unary(uch, "Sleep")(pb.SleepRequest(ms=3000), timeout=0.3),
               grpc.StatusCode.DEADLINE_EXCEEDED, "deadline: DEADLINE_EXCEEDED")
        expect(lambda: unary(uch, "Say")(pb.EchoRequest(data=b"x" * (2 << 20)), timeout=5),
               grpc.StatusCode.RESOURCE_EXHAUSTED,
               "body over the 1 MiB listener limit: RESOURCE_EXHAUSTED")

        stream = uch.unary_stream("/secretfree.test.v1.Echo/Count",
                                  request_serializer=ser,
                                  response_deserializer=pb.EchoReply.FromString)
        got = [m.index for m in stream(pb.CountRequest(n=20), timeout=5)]
        tap.eq(got, list(range(20)), "server streaming: 20 messages in order")

        # TLS.
        with open(scrt, "rb") as f:
            roots = f.read()
        tch = grpc.secure_channel("localhost:%d" % port,
                                  grpc.ssl_channel_credentials(root_certificates=roots))
        r = unary(tch, "Say")(pb.EchoRequest(text="over tls"), timeout=5)
        tap.eq(r.text, "over tls", "TLS: unary round trip")
        r = unary(tch, "Whoami")(pb.EchoRequest(), timeout=5)
        tap.eq(r.text, "", "TLS without a client certificate: none seen")
        tap.eq(r.uid, -1, "TLS: no peer uid")
        with open(ckey, "rb") as f:
            ck = f.read()
        with open(ccrt, "rb") as f:
            cc = f.read()
        mch = grpc.secure_channel("localhost:%d" % port, grpc.ssl_channel_credentials(
            root_certificates=roots, private_key=ck, certificate_chain=cc))
        r = unary(mch, "Whoami")(pb.EchoRequest(), timeout=5)
        tap.ok("BEGIN CERTIFICATE" in r.text, "mutual TLS: the handler sees the client certificate")
        with open(os.path.join(tmp, "other.crt"), "wb") as f:
            f.write(cc)
        bad = grpc.secure_channel("localhost:%d" % port,
                                  grpc.ssl_channel_credentials(root_certificates=cc))
        expect(lambda: unary(bad, "Say")(pb.EchoRequest(), timeout=3),
               grpc.StatusCode.UNAVAILABLE, "TLS with an untrusted server certificate: UNAVAILABLE")
        for ch in (uch, tch, mch, bad):
            ch.close()

        # The C client over TLS too.
        out = subprocess.run([os.environ["SF_ECHO_CLIENT"], "localhost:%d" % port, "Say",
                              "--ca", scrt, "from C"], capture_output=True, text=True)
        tap.ok("status=OK" in out.stdout and "text=from C" in out.stdout,
               "C client over TLS", out.stdout + out.stderr)

        proc.terminate()
        rc = proc.wait(timeout=10)
        tap.eq(rc, 0, "echo-server exits cleanly on SIGTERM")
        tap.ok(not os.path.exists(sock), "and removes its socket")
        proc = None
    finally:
        if proc:
            proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    return tap.done()


if __name__ == "__main__":
    sys.exit(main())
