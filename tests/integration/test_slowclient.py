#!/usr/bin/python3
"""A slow client cannot hold the listener (issue 11).

Against a real stack (SoftHSM2 token, signer, authz with 8 workers on its TLS
device listener), each while normal enrollments must still succeed:
- workers + 8 header-only streams (grpcio stream_unary whose request
  iterator never yields) on authz's device listener, and the same on the
  signer's issuance socket for Signer.Issue; the server cancels them when
  their message has not come within [limits] body_timeout_ms;
- the per-address budget ([limits] pending_per_address) answers
  RESOURCE_EXHAUSTED past it, naming the address;
- 500 idle TLS connections (handshake and HTTP/2 preface, then nothing);
  the test raises its own soft fd limit to 4096 when it is lower, for the
  daemons it starts and for itself;
- a rapid-reset flood: HEADERS immediately followed by RST_STREAM, over and
  over, in raw HTTP/2 frames from a child process of this script (--flood);
  authz's RSS must stay bounded.
Prints the Enroll latency (p50) with and without each load, the flood's
rate and authz's RSS before, during and after."""
import os
import resource
import select
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import tap  # noqa: E402

WORKERS = 8                 # authz's device workers (sfharness AUTHZ_CONF)
SIGNER_WORKERS = 4          # the signer's (SIGNER_CONF)
BODY_TIMEOUT_MS = 3000
PER_ADDRESS = 40
IDLE_CONNECTIONS = 500
FLOOD_SECONDS = 6
FLOOD_ONE_GROWTH_KB = 64 * 1024     # one address: cut within a few thousand streams
FLOOD_AFTER_GROWTH_KB = 64 * 1024   # many addresses: back to this once it stops
ENROLL = "/secretfree.v1.Provisioning/Enroll"


# ---- raw HTTP/2, for the idle connections and the flood ----

def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + struct.pack(">BBI", ftype, flags, sid) + payload


def hpack_literal(name_index, value):
    """A literal header field without indexing, its name from the static
    table, its value a plain string (no Huffman)."""
    value = value.encode()
    return bytes([name_index]) + bytes([len(value)]) + value


def enroll_headers(authority):
    block = (b"\x83\x87"                                   # :method POST, :scheme https
             + hpack_literal(4, ENROLL)                    # :path
             + hpack_literal(1, authority)                 # :authority
             + b"\x0f\x10" + bytes([16]) + b"application/grpc"   # content-type (index 31)
             + b"\x00\x02te\x08trailers")
    return block


PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0)


def tls_connect(port, root_pem_path, source="127.0.0.1", timeout=10):
    ctx = ssl.create_default_context(cafile=root_pem_path)
    ctx.set_alpn_protocols(["h2"])
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                   source_address=(source, 0))
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    s.sendall(PREFACE)
    return s


def flood(port, root_pem_path, seconds, first, last):
    """Rapid reset from 127.0.0.<first>: HEADERS then RST_STREAM(CANCEL)
    for stream after stream on one connection, acknowledging the server's
    SETTINGS and PINGs; a new connection whenever the server closes one.
    When the server refuses the address, the next one up to 127.0.0.<last>
    (then from <first> again), or with first == last a pause and the same
    address. Prints 'streams=N seconds=S answered=N goaways=N
    connections=N refused=N addresses=N'."""
    block = enroll_headers("localhost:%d" % port)
    batch = 200
    sent = answered = goaways = conns = refused = 0
    host, used = first, 1
    end = time.time() + seconds
    while time.time() < end:
        try:
            s = tls_connect(port, root_pem_path, source="127.0.0.%d" % host)
        except OSError:
            refused += 1
            if first == last:
                time.sleep(0.05)
            else:
                host = host + 1 if host < last else first
                used += 1
            continue
        conns += 1
        s.setblocking(False)
        sid, buf, out = 1, b"", b""
        try:
            while time.time() < end and sid < 2 ** 31 - 2 * batch:
                chunk = []
                for _ in range(batch):
                    chunk.append(frame(1, 0x4, sid, block))
                    chunk.append(frame(3, 0, sid, struct.pack(">I", 8)))
                    sid += 2
                out += b"".join(chunk)
                while out:
                    r, w, _ = select.select([s], [s], [], 1)
                    if w:
                        try:
                            n = s.send(out)
                            out = out[n:]
                        except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                            pass
                    if r or s.pending():
                        try:
                            data = s.recv(1 << 16)
                        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                            data = None
                        if data == b"":
                            raise ConnectionError("closed")
                        buf += data or b""
                    while len(buf) >= 9:
                        ln = struct.unpack(">I", b"\0" + buf[:3])[0]
                        if len(buf) < 9 + ln:
                            break
                        ftype, flags = buf[3], buf[4]
                        if ftype == 4 and not flags & 1:
                            out += frame(4, 1, 0)
                        elif ftype == 6 and not flags & 1:
                            out += frame(6, 1, 0, buf[9:9 + ln])
                        elif ftype == 1:
                            answered += 1
                        elif ftype == 7:
                            goaways += 1
                        buf = buf[9 + ln:]
                sent += batch
        except (OSError, ConnectionError):
            pass
        finally:
            s.close()
    print("streams=%d seconds=%d answered=%d goaways=%d connections=%d refused=%d "
          "addresses=%d" % (sent, seconds, answered, goaways, conns, refused,
                            min(used, last - first + 1)))


if len(sys.argv) > 1 and sys.argv[1] == "--flood":
    flood(int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), int(sys.argv[5]),
          int(sys.argv[6]))
    sys.exit(0)


from sfharness import (Device, RpcError, Stack, TempDir, protos)  # noqa: E402

import grpc  # noqa: E402

pb = protos()


def raise_fd_limit(want=4096):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def p50(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if xs else float("nan")


class HeaderOnly:
    """n streams of path on their own channel (their own connection), each
    a stream_unary call whose request iterator never yields: the headers
    go out, the message never does."""

    def __init__(self, target, path, n, creds=None, timeout=60):
        opts = [("grpc.use_local_subchannel_pool", 1)]
        self.channel = (grpc.secure_channel(target, creds, options=opts) if creds
                        else grpc.insecure_channel(target, options=opts))
        fn = self.channel.stream_unary(path, request_serializer=lambda b: b,
                                       response_deserializer=lambda b: b)
        self.stop = threading.Event()

        def never():
            self.stop.wait()
            return
            yield  # noqa: unreachable: makes this a generator
        self.calls = [fn.future(never(), timeout=timeout) for _ in range(n)]

    def outcomes(self, wait=30):
        """{code name: [details]} of the calls, waiting up to `wait` s in
        all for them to end."""
        end = time.time() + wait
        while time.time() < end and not all(f.done() for f in self.calls):
            time.sleep(0.05)
        out = {}
        for f in self.calls:
            if not f.done():
                out.setdefault("STILL RUNNING", []).append("")
                continue
            try:
                f.result()
                out.setdefault("OK", []).append("")
            except grpc.RpcError as e:
                out.setdefault(e.code().name, []).append(e.details())
        return out

    def close(self):
        for f in self.calls:
            f.cancel()
        self.stop.set()
        self.channel.close()


class Enroller:
    """Enrollments of a few devices in turn, with their CSRs made once."""

    def __init__(self, st, devices):
        self.st = st
        self.csrs = [(d, d.csr()) for d in devices]
        self.i = 0

    def one(self, timeout=2):
        d, csr = self.csrs[self.i % len(self.csrs)]
        self.i += 1
        t0 = time.time()
        self.st.device.call("Provisioning", "Enroll", pb.provisioning.EnrollRequest(csr=csr),
                            pb.provisioning.EnrollResponse, timeout=timeout)
        return time.time() - t0

    def run(self, n, timeout=2):
        """(latencies of the calls that succeeded, errors)."""
        lat, errs = [], []
        for _ in range(n):
            try:
                lat.append(self.one(timeout))
            except RpcError as e:
                errs.append("%s: %s" % (e.code.name, e.details))
        return lat, errs


def test_header_only(st, en, root_pem):
    creds = grpc.ssl_channel_credentials(root_certificates=root_pem.encode())
    lat0, errs = en.run(20)
    tap.ok(not errs, "20 enrollments without load", errs)
    ho = HeaderOnly(st.authz.device, ENROLL, WORKERS + 8, creds)
    time.sleep(0.5)
    t0 = time.time()
    lat1, errs = en.run(20)
    tap.ok(not errs, "with %d header-only Enroll streams held open on the device listener, "
           "20 enrollments with a 2 s deadline succeed" % (WORKERS + 8), errs)
    tap.diag("Enroll p50: %.1f ms without, %.1f ms with %d header-only streams"
             % (p50(lat0) * 1000, p50(lat1) * 1000, WORKERS + 8))
    out = ho.outcomes(wait=BODY_TIMEOUT_MS / 1000 + 20)
    waited = time.time() - t0
    want = "no request message within %d ms" % BODY_TIMEOUT_MS
    tap.ok(list(out) == ["CANCELLED"] and all(d == want for d in out["CANCELLED"]),
           "the server cancels them when no message has come within body_timeout_ms", out)
    tap.ok(waited < BODY_TIMEOUT_MS / 1000 + 10, "after about %d ms (%.1f s)"
           % (BODY_TIMEOUT_MS, waited))
    ho.close()
    return lat0


def test_per_address(st, en, root_pem):
    creds = grpc.ssl_channel_credentials(root_certificates=root_pem.encode())
    # max_concurrent_streams is 16 per connection: three connections.
    hos = [HeaderOnly(st.authz.device, ENROLL, n, creds) for n in (15, 15, 15)]
    time.sleep(0.8)
    out = {}
    for ho in hos:
        for code, details in ho.outcomes(wait=0.2).items():
            out.setdefault(code, []).extend(details)
    refused = out.get("RESOURCE_EXHAUSTED", [])
    tap.eq(len(refused), 45 - PER_ADDRESS, "45 header-only streams from one address, "
           "pending_per_address = %d: the calls past it are refused at once" % PER_ADDRESS, out)
    tap.ok(refused and all("too many calls from ipv4:127.0.0.1 in progress" in d
                           for d in refused),
           "RESOURCE_EXHAUSTED naming the address", refused[:3])
    lat, errs = en.run(1)
    tap.ok(errs and errs[0].startswith("RESOURCE_EXHAUSTED"),
           "an enrollment from the same address is refused too while the budget is spent", errs)
    for ho in hos:
        ho.close()
    time.sleep(0.5)
    lat, errs = en.run(3)
    tap.ok(not errs, "once the slow streams are gone, enrollment works again", errs)


def test_signer(st, devices):
    sg = st.signer
    req = pb.signer.IssueRequest(csr=devices[0].csr(), product_line="widgiot",
                                 region="us-east-1")
    iss = sg.issuance_client()
    ho = HeaderOnly(sg.issuance, "/secretfree.v1.Signer/Issue", SIGNER_WORKERS + 8)
    time.sleep(0.5)
    try:
        t0 = time.time()
        r = iss.call("Signer", "Issue", req, pb.signer.IssueResponse, timeout=2)
        tap.ok(r.serial != "", "with %d header-only Issue streams on the signer's issuance "
               "socket, Signer.Issue with a 2 s deadline succeeds (%.0f ms)"
               % (SIGNER_WORKERS + 8, (time.time() - t0) * 1000))
    except RpcError as e:
        tap.ok(False, "Signer.Issue beside header-only streams", e)
    ho.close()
    iss.close()


def idle_connection_count(pid, port):
    """authz's established TCP connections on port (from /proc)."""
    n = 0
    for path in ("/proc/%d/net/tcp" % pid, "/proc/%d/net/tcp6" % pid):
        try:
            with open(path) as f:
                for line in f.readlines()[1:]:
                    parts = line.split()
                    if parts[3] == "01" and int(parts[1].split(":")[1], 16) == port:
                        n += 1
        except OSError:
            pass
    return n


def test_idle(st, en, root_pem_path, lat0):
    pid = st.authz.proc.pid
    rss0 = rss_kb(pid)
    socks, fails = [], 0
    t0 = time.time()
    for _ in range(IDLE_CONNECTIONS):
        try:
            socks.append(tls_connect(st.authz.port, root_pem_path))
        except OSError:
            fails += 1
    t_open = time.time() - t0
    time.sleep(0.5)
    tap.eq(fails, 0, "%d idle TLS connections to the device listener, opened in %.1f s"
           % (IDLE_CONNECTIONS, t_open))
    established = idle_connection_count(pid, st.authz.port)
    tap.ok(established >= IDLE_CONNECTIONS, "authz holds them (%d established)" % established)
    lat, errs = en.run(20)
    tap.ok(not errs, "20 enrollments with a 2 s deadline succeed beside them", errs)
    rss1 = rss_kb(pid)
    tap.diag("Enroll p50: %.1f ms without, %.1f ms with %d idle connections; authz RSS "
             "%d kB before, %d kB with them" % (p50(lat0) * 1000, p50(lat) * 1000,
                                                IDLE_CONNECTIONS, rss0, rss1))
    for s in socks:
        s.close()


def run_flood(st, en, root_pem_path, first, last):
    """Flood authz from 127.0.0.<first..last> for FLOOD_SECONDS while
    enrolling from 127.0.0.1 (5 s deadline) every 50 ms. Returns (flood
    stats, enrollment latencies, errors, RSS before, peak RSS)."""
    pid = st.authz.proc.pid
    rss0 = rss_kb(pid)
    peak = [rss0]
    fl = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--flood",
                           str(st.authz.port), root_pem_path, str(FLOOD_SECONDS),
                           str(first), str(last)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_kb(pid))
            time.sleep(0.1)
    th = threading.Thread(target=sample)
    th.start()
    time.sleep(0.5)
    lat, errs = [], []
    while fl.poll() is None:
        a, b = en.run(1, timeout=5)
        lat += a
        errs += b
        time.sleep(0.05)
    out = fl.communicate()[0]
    done.set()
    th.join()
    stats = dict(kv.split("=") for kv in out.split() if "=" in kv)
    stats["raw"] = out.strip()
    return stats, lat, errs, rss0, peak[0]


def rss_settled(pid, limit_kb, wait=15):
    """authz's RSS once it is below limit_kb, or after `wait` s."""
    end = time.time() + wait
    while time.time() < end and rss_kb(pid) >= limit_kb:
        time.sleep(0.5)
    return rss_kb(pid)


def test_flood(st, en, root_pem_path, lat0):
    pid = st.authz.proc.pid
    # One small client from one address, as in the issue.
    stats, lat, errs, rss0, peak = run_flood(st, en, root_pem_path, 2, 2)
    tap.ok(int(stats.get("streams", 0)) > 0, "a rapid-reset flood from one address ran: %s"
           % stats["raw"], stats["raw"])
    tap.ok("listener device: closed the connections of ipv4:127.0.0.2," in st.authz.log_text(),
           "authz closed its connection and refused the address",
           st.authz.log_text()[-2000:])
    tap.ok(int(stats.get("refused", 0)) > 0, "its reconnections were refused (%s)"
           % stats.get("refused"))
    tap.ok(lat and not errs, "%d enrollments during the flood all succeed" % len(lat), errs)
    tap.ok(peak - rss0 < FLOOD_ONE_GROWTH_KB, "authz's RSS stays bounded: %d kB before, %d kB "
           "at most during it" % (rss0, peak))
    tap.diag("flood from one address: %s streams before the cut; Enroll p50 %.1f ms during it "
             "(%.1f ms without)" % (stats.get("streams"), p50(lat) * 1000, p50(lat0) * 1000))
    # The same from address after address: sustained pressure.
    stats, lat, errs, rss0, peak = run_flood(st, en, root_pem_path, 3, 254)
    streams = int(stats.get("streams", 0))
    tap.ok(streams > 0, "a rapid-reset flood from address after address ran: %s"
           % stats["raw"], stats["raw"])
    tap.ok(lat and not errs, "%d enrollments during it all succeed" % len(lat), errs)
    tap.ok(st.authz.proc.poll() is None, "authz survives it")
    rss1 = rss_settled(pid, rss0 + FLOOD_AFTER_GROWTH_KB)
    tap.ok(rss1 - rss0 < FLOOD_AFTER_GROWTH_KB, "afterwards authz's RSS returns: %d kB before, "
           "%d kB at most during it, %d kB after" % (rss0, peak, rss1))
    tap.diag("flood from %s addresses: %.0f streams/s (HEADERS + RST_STREAM) over %d "
             "connections; Enroll p50 %.1f ms during it (%.1f ms without)"
             % (stats.get("addresses"), streams / FLOOD_SECONDS, int(stats.get("connections", 0)),
                p50(lat) * 1000, p50(lat0) * 1000))
    lat, errs = en.run(5)
    tap.ok(not errs, "and enrollment works after it", errs)


def main():
    limit = raise_fd_limit()
    tap.diag("soft fd limit %d" % limit)
    td = TempDir("sf-slow-")
    tmp = td.path
    st = None
    try:
        st = Stack(tmp, authz_kw={})
        # The budget and the message timeout under test, in authz's [limits].
        st.authz.stop()
        os.remove(st.authz.log_path)   # ready() looks for "serving" in it
        with open(st.authz.conf_path) as f:
            conf = f.read()
        conf = conf.replace("[limits]\n", "[limits]\nbody_timeout_ms = %d\n"
                            "pending_per_address = %d\n" % (BODY_TIMEOUT_MS, PER_ADDRESS))
        with open(st.authz.conf_path, "w") as f:
            f.write(conf)
        st.authz.start()
        devices = [Device(tmp, "%04d" % (5000 + i)) for i in range(6)]
        st.register(devices, region="us-east-1")
        root_pem_path = os.path.join(tmp, "root.pem")
        with open(root_pem_path, "w") as f:
            f.write(st.root_pem)
        en = Enroller(st, devices)
        lat0 = test_header_only(st, en, st.root_pem)
        test_per_address(st, en, st.root_pem)
        test_signer(st, devices)
        test_idle(st, en, root_pem_path, lat0)
        test_flood(st, en, root_pem_path, lat0)
    except Exception as e:
        import traceback
        tap.ok(False, "test raised %r" % e, traceback.format_exc())
    finally:
        if st:
            st.stop()
        td.cleanup()
    return tap.done()


if __name__ == "__main__":
    sys.exit(main())
