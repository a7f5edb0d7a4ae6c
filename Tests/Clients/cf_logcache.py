#!/usr/bin/env python3
"""A client of log-cache's HTTP API that reads as the cf CLI (v8) does.

    cf_logcache.py URL SOURCE_ID recent OUT
    cf_logcache.py URL SOURCE_ID walk OUT (--expect N | --until LINE) [--timeout S] [--started FILE]

recent: `cf logs --recent`: one read, limit 1000, descending, logs only,
from the zero time; on 429 the limit is halved and the read tried again;
the answer is reversed and printed oldest first.

walk: `cf logs`: a read of the newest log envelope (limit 1, descending),
then go-log-cache's Walk from one second before it: read from the start
time to two seconds ago, hand over what came, start again one nanosecond
after the last envelope's time; 250 ms between empty reads. It stops once
it has handed over N envelopes (or one whose payload is LINE), or at the
timeout. With --started, FILE is made once the first read (the newest
envelope's) is answered: the walk's start is fixed from then on.

Each envelope's payload goes to OUT, one per line, in the order handed
over. Every answer is checked for the JSON log-cache gives: proto field
names, every field present, 64-bit integers as strings, the payload in
base64. A token comes from $CF_TOKEN. Exits 1 with the reason on any
mismatch or HTTP error, 2 on timeout.
"""
import base64, json, os, sys, time, urllib.error, urllib.parse, urllib.request

GO_ZERO_TIME = -6795364578871345152  # time.Time{}.UnixNano(), what the CLI sends
ENVELOPE_FIELDS = ["timestamp", "source_id", "instance_id", "deprecated_tags", "tags"]
reads = 0


def fail(message, status=1):
    print("cf_logcache: " + message, file=sys.stderr)
    sys.exit(status)


def check(envelope):
    for name in ENVELOPE_FIELDS:
        if name not in envelope:
            fail("envelope lacks %r: %s" % (name, json.dumps(envelope)))
    if not isinstance(envelope["timestamp"], str) or not envelope["timestamp"].lstrip("-").isdigit():
        fail("timestamp is not an integer in a string: %r" % envelope["timestamp"])
    if "sourceId" in envelope or "instanceId" in envelope:
        fail("camelCase names, not proto names: %s" % json.dumps(envelope))
    log = envelope.get("log")
    if log is None:
        fail("not a log envelope: %s" % json.dumps(envelope))
    if log.get("type") not in ("OUT", "ERR"):
        fail("log type %r" % log.get("type"))
    return base64.b64decode(log["payload"], validate=True).decode()


def read(url, source, **params):
    global reads
    reads += 1
    query = []
    for name, value in params.items():
        for item in value if isinstance(value, list) else [value]:
            query.append((name, str(item).lower() if isinstance(item, bool) else str(item)))
    request = urllib.request.Request(
        "%s/api/v1/read/%s?%s" % (url, urllib.parse.quote(source, safe=""), urllib.parse.urlencode(query)))
    token = os.environ.get("CF_TOKEN")
    if token:
        request.add_header("Authorization", "bearer " + token)
    with urllib.request.urlopen(request, timeout=10) as response:
        if response.headers.get("Content-Type", "").split(";")[0] != "application/json":
            fail("content type %r" % response.headers.get("Content-Type"))
        body = json.load(response)
    if list(body) != ["envelopes"] or list(body["envelopes"]) != ["batch"]:
        fail("not {\"envelopes\":{\"batch\":[...]}}: %s" % json.dumps(body)[:200])
    return body["envelopes"]["batch"]


def recent(url, source, out):
    limit = 1000
    while True:
        try:
            batch = read(url, source, start_time=GO_ZERO_TIME, envelope_types="LOG", limit=limit, descending=True)
            break
        except urllib.error.HTTPError as error:
            if error.code == 429 and limit > 1:
                limit //= 2
                continue
            fail("HTTP %d: %s" % (error.code, error.read().decode()))
    times = [int(e["timestamp"]) for e in batch]
    if times != sorted(times, reverse=True):
        fail("a descending read is not newest first")
    for envelope in reversed(batch):
        out.write(check(envelope) + "\n")


def walk(url, source, out, expect, until, timeout, started=None):
    deadline = time.monotonic() + timeout
    newest = read(url, source, start_time=GO_ZERO_TIME, envelope_types="LOG", limit=1, descending=True)
    start = int(newest[0]["timestamp"]) if newest else time.time_ns()
    start -= 1_000_000_000
    if started:
        open(started, "w").close()
    handed = 0
    seen_last = False
    while handed < expect and not seen_last:
        if time.monotonic() > deadline:
            out.flush()
            wanted = "%d" % expect if until is None else "up to %r" % until
            fail("timed out with %d envelopes of %s after %d reads" % (handed, wanted, reads), 2)
        end = time.time_ns() - 2_000_000_000
        try:
            batch = read(url, source, start_time=start, end_time=end, envelope_types="LOG")
        except urllib.error.HTTPError as error:
            fail("HTTP %d: %s" % (error.code, error.read().decode()))
        if not batch:
            time.sleep(0.25)
            continue
        times = [int(e["timestamp"]) for e in batch]
        if times != sorted(times) or times[0] < start or times[-1] >= end:
            fail("a walk read out of order or out of its range")
        for envelope in batch:
            payload = check(envelope)
            out.write(payload + "\n")
            seen_last = seen_last or payload == until
        handed += len(batch)
        start = times[-1] + 1


def main():
    args = sys.argv[1:]
    if len(args) < 4 or args[2] not in ("recent", "walk"):
        fail(__doc__.strip().splitlines()[2].strip())
    url, source, mode, path = args[:4]
    options = dict(zip(args[4::2], args[5::2]))
    with open(path, "w") as out:
        if mode == "recent":
            recent(url.rstrip("/"), source, out)
        else:
            expect = int(options["--expect"]) if "--expect" in options else float("inf")
            walk(url.rstrip("/"), source, out, expect, options.get("--until"), float(options.get("--timeout", "60")),
                 options.get("--started"))
    print("reads=%d" % reads)


main()
