#!/usr/bin/python3
"""A daemon never dies on input: every method of every service, on every
listener of both daemons, gets an empty message, random bytes, and messages
with random field values. Each call must be answered (no hang), with a
status that is not UNKNOWN (a handler that returned a non-status), and both
daemons must still be running and serving at the end."""
import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import tap  # noqa: E402
from sfharness import (Authz, Client, Device, RpcError, Signer, TempDir, Token,  # noqa: E402
                       build_hierarchy, protos, server_cert)

import grpc  # noqa: E402
from google.protobuf import descriptor as D  # noqa: E402

pb = protos()
rng = random.Random(20261201)


def random_value(field, depth):
    t = field.type
    if t == D.FieldDescriptor.TYPE_STRING:
        alphabet = "abcXYZ019-._/ é€🔑\n\x00"
        return "".join(rng.choice(alphabet) for _ in range(rng.choice([0, 1, 8, 64, 300])))
    if t == D.FieldDescriptor.TYPE_BYTES:
        return bytes(rng.getrandbits(8) for _ in range(rng.choice([0, 1, 32, 500, 5000])))
    if t == D.FieldDescriptor.TYPE_BOOL:
        return rng.random() < 0.5
    if t == D.FieldDescriptor.TYPE_ENUM:
        return rng.choice([v.number for v in field.enum_type.values] + [999])
    if t in (D.FieldDescriptor.TYPE_UINT32, D.FieldDescriptor.TYPE_UINT64):
        return rng.choice([0, 1, 2 ** 31, 2 ** 32 - 1 if t == D.FieldDescriptor.TYPE_UINT32 else 2 ** 63])
    if t in (D.FieldDescriptor.TYPE_INT32, D.FieldDescriptor.TYPE_INT64):
        return rng.choice([0, -1, 1, 2 ** 31 - 1])
    return None


def fill(msg, depth=0):
    for f in msg.DESCRIPTOR.fields:
        if rng.random() < 0.3:
            continue
        if f.type == D.FieldDescriptor.TYPE_MESSAGE:
            if depth > 2:
                continue
            if f.label == D.FieldDescriptor.LABEL_REPEATED:
                for _ in range(rng.choice([0, 1, 3])):
                    fill(getattr(msg, f.name).add(), depth + 1)
            else:
                fill(getattr(msg, f.name), depth + 1)
            continue
        v = random_value(f, depth)
        if v is None:
            continue
        if f.label == D.FieldDescriptor.LABEL_REPEATED:
            getattr(msg, f.name).extend([v] * rng.choice([0, 1, 2]))
        else:
            setattr(msg, f.name, v)
    return msg


def hammer(client, services, rounds):
    """Call every method; returns (calls, statuses seen, problems)."""
    calls, seen, problems = 0, {}, []
    for svc in services:
        for m in svc.methods:
            mod = [x for x in (pb.signer, pb.ca_admin, pb.provisioning, pb.registry, pb.common)
                   if m.input_type.name in dir(x)][0]
            req_cls = getattr(mod, m.input_type.name)
            out_mod = [x for x in (pb.signer, pb.ca_admin, pb.provisioning, pb.registry, pb.common)
                       if m.output_type.name in dir(x)][0]
            resp_cls = getattr(out_mod, m.output_type.name)
            bodies = [b"", bytes(rng.getrandbits(8) for _ in range(rng.choice([1, 7, 100, 3000])))]
            bodies += [fill(req_cls()).SerializeToString() for _ in range(rounds)]
            for body in bodies:
                calls += 1
                t0 = time.time()
                try:
                    if m.server_streaming:
                        client.channel.unary_stream(
                            "/%s/%s" % (svc.full_name, m.name),
                            request_serializer=lambda b: b,
                            response_deserializer=resp_cls.FromString)(body, timeout=20).__iter__().__next__()
                    else:
                        client.call(svc.name, m.name, body, resp_cls, timeout=20)
                    code = "OK"
                except StopIteration:
                    code = "OK"
                except RpcError as e:
                    code = e.code.name
                except grpc.RpcError as e:
                    code = e.code().name
                seen[code] = seen.get(code, 0) + 1
                if code in ("UNKNOWN", "DEADLINE_EXCEEDED") or time.time() - t0 > 15:
                    problems.append("%s.%s -> %s (%.1f s)" % (svc.name, m.name, code, time.time() - t0))
    return calls, seen, problems


def main():
    td = TempDir("sf-robust-")
    tmp = td.path
    sg = az = None
    try:
        tok = Token(os.path.join(tmp, "token"))
        sg = Signer(tmp, tok).start()
        sadmin = sg.admin_client()
        build_hierarchy(sadmin)
        key, crt, root = server_cert(sadmin, tmp, "authz")
        az = Authz(tmp, sg, crt, key).start()
        f = {n: pb.__dict__[n].DESCRIPTOR for n in ("signer", "ca_admin", "provisioning", "registry")}
        svc = {n: list(f[n].services_by_name.values())[0] for n in f}
        all_svcs = [svc[n] for n in ("signer", "ca_admin", "provisioning", "registry")]
        targets = [
            ("signer issuance socket", sg.issuance_client()),
            ("signer admin socket", sg.admin_client()),
            ("authz admin socket", az.admin_client()),
            ("authz TLS listener", az.device_client(root)),
        ]
        total = 0
        for name, client in targets:
            calls, seen, problems = hammer(client, all_svcs, rounds=6)
            total += calls
            tap.ok(not problems, "%s: %d calls answered, none UNKNOWN or hanging" % (name, calls),
                   "\n".join(problems[:20]))
            tap.diag("%s: %s" % (name, ", ".join("%s %d" % kv for kv in sorted(seen.items()))))
            client.close()
        tap.ok(sg.proc.poll() is None, "the signer survived %d hostile calls" % total)
        tap.ok(az.proc.poll() is None, "authz survived them")
        d = Device(tmp, "1111", "ec-p256")
        rec = pb.common.DeviceKeyRecord(device_id="1111", spki_der=d.spki_der(), product_line="widgiot",
                                        region="us-east-1")
        sadmin.call("CaAdmin", "RegisterDeviceKeys", pb.ca_admin.RegisterDeviceKeysRequest(records=[rec]),
                    pb.common.ImportResult)
        aadmin = az.admin_client()
        aadmin.call("Registry", "ImportDevices", pb.registry.ImportDevicesRequest(records=[rec]),
                    pb.common.ImportResult)
        dev = az.device_client(root)
        r = dev.call("Provisioning", "Enroll", pb.provisioning.EnrollRequest(csr=d.csr()),
                     pb.provisioning.EnrollResponse)
        tap.ok(r.serial != "", "and both still serve a real enrollment afterwards")
        for c in (dev, aadmin, sadmin):
            c.close()
    except Exception as e:
        import traceback
        tap.ok(False, "test raised %r" % e, traceback.format_exc())
    finally:
        if az:
            rc = az.stop()
            tap.eq(rc, 0, "authz exits cleanly")
        if sg:
            rc = sg.stop()
            tap.eq(rc, 0, "the signer exits cleanly")
        td.cleanup()
    return tap.done()


if __name__ == "__main__":
    sys.exit(main())
