#!/usr/bin/env python3
"""A Loggregator v2 gRPC client no one at Sluice wrote: Python grpcio, with
stubs generated at start by grpcio-tools from Protos/ (the public schema's
package, names and field numbers).

  send     --target H:P --app A --count N [--method send|batch|stream]
           [--batch B] [--types log,counter,gauge,timer,event]
           prints "sent N" once every call returned OK
  receive  --target H:P [--source-id A]... [--shard S] [--batched]
           [--types log,...] [--counter-name X] [--count N] [--timeout S]
           prints one JSON line per envelope, then "done N"
  call     --target H:P --path /pkg.Service/Method [--raw HEX]
           prints the status code name and details of a raw unary call
  load     --target H:P --app A --count N [--batch B] [--payload BYTES]
           bin/bench's gRPC load: BatchSender with batches made by patching
           a template's bytes (each payload starts with its 12-digit
           sequence, as `sluice bench load`'s); prints
           "load sent=N rate=R cpu_seconds=C peak_rss=B"

TLS: --ca, --cert, --key (mutual), --server-name (e.g. metron).
--token T sends `authorization: bearer T`.
"""
import argparse
import json
import os
import sys
import tempfile
import time

import grpc
from grpc_tools import protoc

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def stubs():
    out = tempfile.mkdtemp(prefix="sluice-grpc-stubs-")
    protos = os.path.join(ROOT, "Protos")
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    args = ["protoc", f"-I{protos}", f"-I{include}", f"--python_out={out}", f"--grpc_python_out={out}",
            os.path.join(protos, "envelope.proto"), os.path.join(protos, "ingress.proto"),
            os.path.join(protos, "egress.proto")]
    if protoc.main(args) != 0:
        sys.exit("protoc failed")
    sys.path.insert(0, out)
    import envelope_pb2, ingress_pb2, ingress_pb2_grpc, egress_pb2, egress_pb2_grpc  # noqa: E401
    return envelope_pb2, ingress_pb2, ingress_pb2_grpc, egress_pb2, egress_pb2_grpc


def channel(args):
    options = [("grpc.max_receive_message_length", 8 * 1024 * 1024)]
    if args.ca:
        if args.server_name:
            options.append(("grpc.ssl_target_name_override", args.server_name))
        creds = grpc.ssl_channel_credentials(
            root_certificates=open(args.ca, "rb").read(),
            private_key=open(args.key, "rb").read() if args.key else None,
            certificate_chain=open(args.cert, "rb").read() if args.cert else None)
        return grpc.secure_channel(args.target, creds, options=options)
    return grpc.insecure_channel(args.target, options=options)


def metadata(args):
    return [("authorization", f"bearer {args.token}")] if args.token else []


def envelope(pb, app, index, kind):
    e = pb.Envelope(timestamp=time.time_ns(), source_id=app, instance_id=str(index % 3))
    e.tags["source_type"] = "APP/PROC/WEB"
    if kind == "log":
        e.log.payload = f"line {index}".encode()
        e.log.type = pb.Log.OUT if index % 2 == 0 else pb.Log.ERR
    elif kind == "counter":
        e.counter.name = f"requests{index % 2}"
        e.counter.delta = 1
        e.counter.total = index
    elif kind == "gauge":
        e.gauge.metrics["cpu"].value = index / 100.0
        e.gauge.metrics["cpu"].unit = "percentage"
        if index % 2 == 0:
            e.gauge.metrics["memory"].value = 1024.0
            e.gauge.metrics["memory"].unit = "bytes"
    elif kind == "timer":
        e.timer.name = "http"
        e.timer.start = index
        e.timer.stop = index + 5
    elif kind == "event":
        e.event.title = f"event {index}"
        e.event.body = "body"
    return e


def send(args):
    env, ingress, ingress_grpc, _, _ = stubs()
    kinds = args.types.split(",")
    with channel(args) as ch:
        stub = ingress_grpc.IngressStub(ch)
        envelopes = [envelope(env, args.app, i, kinds[i % len(kinds)]) for i in range(args.count)]
        batches = [env.EnvelopeBatch(batch=envelopes[i:i + args.batch]) for i in range(0, len(envelopes), args.batch)]
        md = metadata(args)
        if args.method == "send":
            for batch in batches:
                stub.Send(batch, metadata=md, timeout=30)
        elif args.method == "batch":
            stub.BatchSender(iter(batches), metadata=md, timeout=60)
        else:
            stub.Sender(iter(envelopes), metadata=md, timeout=60)
    print(f"sent {args.count}", flush=True)


def describe(pb, e):
    kind = e.WhichOneof("message")
    out = {"source_id": e.source_id, "instance_id": e.instance_id, "type": kind,
           "tags": dict(e.tags), "deprecated_tags": {k: v.text for k, v in e.deprecated_tags.items()}}
    if kind == "log":
        out["payload"] = e.log.payload.decode(errors="replace")
        out["log_type"] = pb.Log.Type.Name(e.log.type)
    elif kind == "counter":
        out["name"] = e.counter.name
    elif kind == "gauge":
        out["names"] = sorted(e.gauge.metrics.keys())
    elif kind == "timer":
        out["name"] = e.timer.name
    elif kind == "event":
        out["title"] = e.event.title
    return out


def receive(args):
    env, _, _, egress, egress_grpc = stubs()
    selectors = []
    for source in args.source_id or [""]:
        for kind in args.types.split(","):
            s = egress.Selector(source_id=source)
            if kind == "log":
                s.log.SetInParent()
            elif kind == "counter":
                s.counter.name = args.counter_name or ""
            elif kind == "gauge":
                s.gauge.names.extend(args.gauge_name or [])
            elif kind == "timer":
                s.timer.SetInParent()
            elif kind == "event":
                s.event.SetInParent()
            selectors.append(s)
    received = 0
    deadline = time.time() + args.timeout
    with channel(args) as ch:
        stub = egress_grpc.EgressStub(ch)
        if args.batched:
            request = egress.EgressBatchRequest(shard_id=args.shard, selectors=selectors,
                                                use_preferred_tags=not args.legacy_tags)
            call = stub.BatchedReceiver(request, metadata=metadata(args), timeout=args.timeout)
        else:
            request = egress.EgressRequest(shard_id=args.shard, selectors=selectors,
                                           use_preferred_tags=not args.legacy_tags)
            call = stub.Receiver(request, metadata=metadata(args), timeout=args.timeout)
        print("subscribed", flush=True)
        try:
            for message in call:
                envelopes = message.batch if args.batched else [message]
                for e in envelopes:
                    print(json.dumps(describe(env, e)), flush=True)
                    received += 1
                if args.count and received >= args.count:
                    call.cancel()
                    break
                if time.time() > deadline:
                    call.cancel()
                    break
        except grpc.RpcError as error:
            if error.code() not in (grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED):
                print(f"status {error.code().name} {error.details()}", flush=True)
                sys.exit(3)
    print(f"done {received}", flush=True)


def call(args):
    with channel(args) as ch:
        method = ch.unary_unary(args.path, request_serializer=lambda b: b, response_deserializer=lambda b: b)
        try:
            method(bytes.fromhex(args.raw), metadata=metadata(args), timeout=10)
            print("OK", flush=True)
        except grpc.RpcError as error:
            print(f"{error.code().name} {error.details()}", flush=True)


def load(args):
    import resource
    env, _, _, _, _ = stubs()
    template = env.Envelope(source_id=args.app, instance_id="0")
    template.tags["source_type"] = "APP/PROC/WEB"
    marker = b"\xfe" * 12
    template.log.payload = marker + b"x" * max(args.payload - 12, 0)
    template.log.type = env.Log.OUT

    def batches():
        sent = 0
        while sent < args.count:
            n = min(args.batch, args.count - sent)
            template.timestamp = time.time_ns()
            one = template.SerializeToString()
            at = one.index(marker)
            entry = b"\x0a" + varint(len(one))
            parts = []
            for i in range(sent, sent + n):
                parts.append(entry + one[:at] + b"%012d" % i + one[at + 12:])
            sent += n
            yield b"".join(parts)

    start = time.monotonic()
    with channel(args) as ch:
        method = ch.stream_unary("/loggregator.v2.Ingress/BatchSender",
                                 request_serializer=lambda b: b, response_deserializer=lambda b: b)
        method(batches(), metadata=metadata(args), timeout=3600)
    seconds = time.monotonic() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(f"load sent={args.count} rate={args.count / seconds:.0f} cpu_seconds={usage.ru_utime + usage.ru_stime:.2f} "
          f"peak_rss={usage.ru_maxrss * 1024}", flush=True)


def varint(value):
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("send", "receive", "call", "load"):
        p = sub.add_parser(name)
        p.add_argument("--target", required=True)
        p.add_argument("--ca")
        p.add_argument("--cert")
        p.add_argument("--key")
        p.add_argument("--server-name")
        p.add_argument("--token")
        if name == "send":
            p.add_argument("--app", required=True)
            p.add_argument("--count", type=int, default=10)
            p.add_argument("--batch", type=int, default=100)
            p.add_argument("--method", choices=["send", "batch", "stream"], default="send")
            p.add_argument("--types", default="log")
        elif name == "receive":
            p.add_argument("--source-id", action="append")
            p.add_argument("--shard", default="")
            p.add_argument("--batched", action="store_true")
            p.add_argument("--legacy-tags", action="store_true")
            p.add_argument("--types", default="log")
            p.add_argument("--counter-name")
            p.add_argument("--gauge-name", action="append")
            p.add_argument("--count", type=int, default=0)
            p.add_argument("--timeout", type=float, default=30)
        elif name == "load":
            p.add_argument("--app", default="bench-app")
            p.add_argument("--count", type=int, default=100000)
            p.add_argument("--batch", type=int, default=100)
            p.add_argument("--payload", type=int, default=200)
        else:
            p.add_argument("--path", required=True)
            p.add_argument("--raw", default="")
    args = parser.parse_args()
    {"send": send, "receive": receive, "call": call, "load": load}[args.command](args)


if __name__ == "__main__":
    main()
