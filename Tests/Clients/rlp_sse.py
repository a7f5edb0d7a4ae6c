#!/usr/bin/env python3
"""Reads the RLP gateway's GET /v2/read as a nozzle does, and reports.

    rlp_sse.py URL [--token T] [--stop-after N]

URL is the whole read URL (http://HOST:PORT/v2/read?log&source_id=APP).
Reads server-sent events until the server closes the stream (or N data
envelopes have come, with --stop-after), checking each as the gateway
gives them: `data:` lines holding {"batch":[...]} in protobuf's JSON
mapping with proto field names and every field, `event: heartbeat` with a
Unix time, `event: closing`. Prints one JSON object: the log payloads in
order, the envelope types, the number of heartbeats, whether a closing
event came, and the response's headers. Exits 1 with the reason on any
mismatch.
"""
import base64, json, sys, urllib.request

FIELDS = ["timestamp", "source_id", "instance_id", "deprecated_tags", "tags"]


def fail(message):
    print("rlp_sse: " + message, file=sys.stderr)
    sys.exit(1)


def main():
    args = sys.argv[1:]
    url = args[0]
    options = dict(zip(args[1::2], args[2::2]))
    stop_after = int(options.get("--stop-after", "0"))
    request = urllib.request.Request(url)
    if "--token" in options:
        request.add_header("Authorization", "bearer " + options["--token"])
    report = {"logs": [], "types": [], "heartbeats": 0, "closing": False, "batches": 0}
    with urllib.request.urlopen(request, timeout=60) as response:
        report["headers"] = {k.lower(): v for k, v in response.headers.items()}
        event, data = None, []
        for raw in response:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[len("event: "):]
            elif line.startswith("data: "):
                data.append(line[len("data: "):])
            elif line == "":
                if not data:
                    continue
                text = "\n".join(data)
                if event == "heartbeat":
                    if not text.isdigit():
                        fail("heartbeat data %r is not a Unix time" % text)
                    report["heartbeats"] += 1
                elif event == "closing":
                    if text != "closing due to stream timeout":
                        fail("closing data %r" % text)
                    report["closing"] = True
                elif event is None:
                    body = json.loads(text)
                    if list(body) != ["batch"]:
                        fail("data is not {\"batch\":[...]}: %s" % text[:200])
                    report["batches"] += 1
                    for envelope in body["batch"]:
                        for name in FIELDS:
                            if name not in envelope:
                                fail("envelope lacks %r: %s" % (name, json.dumps(envelope)))
                        if not isinstance(envelope["timestamp"], str):
                            fail("timestamp is not a string")
                        kinds = [k for k in ("log", "counter", "gauge", "timer", "event") if k in envelope]
                        if len(kinds) != 1:
                            fail("not one message type: %s" % json.dumps(envelope))
                        report["types"].append(kinds[0])
                        if kinds[0] == "log":
                            report["logs"].append(base64.b64decode(envelope["log"]["payload"]).decode())
                        if kinds[0] == "counter" and not isinstance(envelope["counter"]["total"], str):
                            fail("counter total is not a string")
                else:
                    fail("unknown event %r" % event)
                event, data = None, []
                if stop_after and len(report["types"]) >= stop_after:
                    break
    print(json.dumps(report))


main()
