#!/usr/bin/env python3
"""Writes the seed corpora under Tests/Fuzz/corpus/<target>/: a few
well-formed inputs of each kind, from which libFuzzer mutates. Run again
after changing a format; the files are committed. Files named
regression-* are inputs the fuzzer found that broke a parser: they are kept."""
import os, struct

here = os.path.dirname(os.path.abspath(__file__))

def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)

def field(number, wire, value):
    key = varint(number << 3 | wire)
    if wire == 0:
        return key + varint(value)
    if wire == 2:
        return key + varint(len(value)) + value
    if wire == 1:
        return key + struct.pack("<Q", value)
    if wire == 5:
        return key + struct.pack("<I", value)

def tag(key, value):
    return field(9, 2, field(1, 2, key) + field(2, 2, value))

def log_envelope(app, text, err=False, instance=b"0", source_type=b"APP/PROC/WEB", ts=1700000000123456789):
    log = field(1, 2, text) + (field(2, 0, 1) if err else b"")
    return (field(1, 0, ts) + field(2, 2, app) + field(4, 2, log) + field(8, 2, instance)
            + tag(b"source_type", source_type))

def counter_envelope(app):
    return field(1, 0, 1) + field(2, 2, app) + field(5, 2, field(1, 2, b"requests") + field(2, 0, 3) + field(3, 0, 10))

def gauge_envelope(app):
    metric = field(1, 2, b"cpu") + field(2, 2, field(1, 2, b"%") + field(2, 1, 0x3FF0000000000000))
    return field(2, 2, app) + field(6, 2, field(1, 2, metric))

def batch(envelopes):
    return b"".join(field(1, 2, e) for e in envelopes)

def frame(kind, payload, seq=1, flags=0):
    return struct.pack(">IBBHQ", len(payload), 1, kind, flags, seq) + payload

def identified(envelopes, parts, ordinals=False):
    trailer = b""
    for sender, sequence, count, first in parts:
        trailer += struct.pack(">QQ", sender, sequence)
        if ordinals:
            trailer += struct.pack(">I", first)
        trailer += struct.pack(">I", count)
    return batch(envelopes) + trailer + struct.pack(">I", len(parts))

def masked(opcode, payload, key=b"\x01\x02\x03\x04"):
    head = bytes([0x80 | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))

rfc5424 = [
    b"<14>1 2026-11-30T10:00:00.123456Z host1 app-guid [APP/PROC/WEB/0] - - hello from the app",
    b"<11>1 2026-11-30T10:00:00+01:00 host1 app-guid [STG/1] ID47 [tags@47450 source_type=\"STG\" x=\"a\\\"b\\]c\"][meta@1 y=\"z\"] \xef\xbb\xbfan error",
    b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"] An application event",
    b"<34>1 - - - - - -",
]
rfc3164 = [
    b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
    b"<13>Nov 30 10:00:00 host app-guid[1234]: plain old syslog",
    b"<13>Nov  3 01:02:03 host tag: line",
    b"no priority at all",
]

# The stream targets (frame, syslog, websocket) take the first byte as the
# size of the chunks the rest arrives in.
seeds = {
    "frame": {
        "envelopes": b"\x0f" + frame(1, batch([log_envelope(b"app-1", b"hello"), log_envelope(b"app-2", b"world", err=True)])),
        "metrics": b"\x0f" + frame(1, batch([counter_envelope(b"app-1"), gauge_envelope(b"app-3")]), seq=7),
        "hello-then-envelopes": b"\x0f" + frame(8, struct.pack(">Q", 42)) + frame(1, batch([log_envelope(b"a", b"x")]), seq=2),
        "identified": b"\x0f" + frame(1, identified([log_envelope(b"a", b"1"), log_envelope(b"b", b"2"), log_envelope(b"a", b"3")],
                                          [(9, 1, 2, 0), (10, 5, 1, 0)]), flags=2),
        "identified-ordinals": b"\x0f" + frame(5, identified([log_envelope(b"a", b"1")], [(9, 1, 1, 4)], ordinals=True), flags=7),
        "ack": b"\x0f" + frame(7, b"", seq=99),
        "subscribe": b"\x0f" + frame(2, field(1, 2, b"app-1"), seq=3),
        "no-source-id": b"\x0f" + frame(1, batch([field(4, 2, field(1, 2, b"orphan"))])),
    },
    "envelope": {
        "log": log_envelope(b"app-guid", b"a line\n"),
        "log-err-tags": log_envelope(b"app-guid", b"err", err=True) + tag(b"deployment", b"cf") + tag(b"", b"empty"),
        "counter": counter_envelope(b"app-guid"),
        "gauge": gauge_envelope(b"app-guid"),
        "timer": field(2, 2, b"app") + field(7, 2, field(1, 2, b"http") + field(2, 0, 5) + field(3, 0, 9)),
        "event": field(2, 2, b"app") + field(10, 2, field(1, 2, b"title") + field(2, 2, b"body")),
        "log-then-counter": log_envelope(b"a", b"x") + field(5, 2, field(1, 2, b"c")),
        "batch": batch([log_envelope(b"a", b"x"), counter_envelope(b"b")]),
        "fixed-fields": field(2, 2, b"app") + field(11, 1, 7) + field(12, 5, 9) + field(13, 0, 1),
    },
    "syslog": {},
    "logplex": {},
    "drain-url": {
        "syslog": b"syslog://logs.example.com:514",
        "syslog-tls": b"syslog-tls://user:s3cret@logs.example.com:6514?hostname=web&ca=/etc/ca.pem&skip-verify=false",
        "https": b"https://collector.example.com/v1/logs?token=abc%20def&region=eu+west",
        "ipv6": b"syslog://[2001:db8::1]:1514",
        "udp": b"syslog-udp://10.0.0.1",
        "https-userinfo": b"https://us%3Aer:p%40ss@h.example.com:8443/path/x?q=1#frag",
    },
    "http-route": {
        "recentlogs": b"\x00/apps/app-guid/recentlogs?limit=100",
        "stream": b"\x00/apps/app%20guid/stream?format=json&access_token=eyJhbGciOi",
        "firehose": b"\x00/firehose/sub-1?format=protobuf",
        "drains": b"\x00/drains",
        "add-drain": b"\x01/apps/a/drains",
        "remove-drain": b"\x03/apps/a/drains/my%2Fdrain",
        "rate-limit": b"\x02/apps/a/log-rate-limit",
        "metrics": b"\x00/metrics",
        "healthz": b"\x04/healthz?x=1&y",
    },
    "websocket": {
        "ping-close": b"\x07" + masked(0x9, b"ping!") + masked(0x8, struct.pack(">H", 1000) + b"bye"),
        "text-binary": b"\x03" + masked(0x1, b"hello") + masked(0x2, bytes(range(40))) + masked(0x8, b""),
        "fragmented": b"\x3f" + bytes([0x01, 0x83]) + b"\x00\x00\x00\x00abc" + masked(0x0, b"def") + masked(0x8, b"\x03\xe8"),
        "medium": b"\x20" + masked(0x9, b"x" * 200) + masked(0x8, b"\x03\xe9") + masked(0x8, b"\x03\xe9"),
    },
}

# grpc: the first byte picks the head (bits 0-1: BatchSender, Send, Sender,
# BatchedReceiver; bit 2 a content type that is not gRPC; bit 3 GET; bit 4
# the head ends the stream; bit 7 the last DATA frame does), the second the
# DATA frames' size, then the request's bytes: messages with their 5-byte
# prefix.
def grpc_message(payload, flag=0):
    return struct.pack(">BI", flag, len(payload)) + payload

selector = field(1, 2, b"app-1") + field(2, 2, b"")
seeds["grpc"] = {
    "batch-sender": b"\x80\x20" + grpc_message(batch([log_envelope(b"app-1", b"hello"), counter_envelope(b"app-1")]))
                    + grpc_message(batch([gauge_envelope(b"app-2")])),
    "send": b"\x81\x3f" + grpc_message(batch([log_envelope(b"app-1", b"one")])),
    "sender": b"\x82\x07" + grpc_message(log_envelope(b"app-1", b"a")) + grpc_message(log_envelope(b"app-1", b"b")),
    "batched-receiver": b"\x83\x10" + grpc_message(field(1, 2, b"shard") + field(3, 0, 1) + field(4, 2, selector)),
    "compressed": b"\x80\x10" + grpc_message(b"\x00\x01", flag=1),
    "not-grpc": b"\x0c\x10" + b"GET / HTTP/1.1",
}

# dns: answers as a DNS server sends them (DNSMessage.parse).
def dns_name(name):
    return b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"

def dns_answer(questions, answers, additional, flags=0x8180, ident=0x1234):
    head = struct.pack(">HHHHHH", ident, flags, len(questions), len(answers), 0, len(additional))
    return head + b"".join(questions) + b"".join(answers) + b"".join(additional)

def dns_record(name, rtype, data, ttl=30):
    return name + struct.pack(">HHIH", rtype, 1, ttl, len(data)) + data

srv_question = dns_name("_sluice._tcp.z1.sluice.test") + struct.pack(">HH", 33, 1)
seeds["dns"] = {
    "srv-additional": dns_answer(
        [srv_question],
        [dns_record(b"\xc0\x0c", 33, struct.pack(">HHH", 0, 0, 9001) + dns_name("s1.sluice.test")),
         dns_record(b"\xc0\x0c", 33, struct.pack(">HHH", 0, 0, 9002) + dns_name("s2.sluice.test"))],
        [dns_record(dns_name("s1.sluice.test"), 1, bytes([127, 0, 0, 1])),
         dns_record(dns_name("s2.sluice.test"), 28, bytes(15) + b"\x01"),
         dns_record(b"\0", 41, b"")]),
    "a-cname": dns_answer(
        [dns_name("servers.sluice.test") + struct.pack(">HH", 1, 1)],
        [dns_record(b"\xc0\x0c", 5, dns_name("real.sluice.test")),
         dns_record(dns_name("real.sluice.test"), 1, bytes([10, 0, 0, 7]))], []),
    "nxdomain": dns_answer([srv_question], [], [], flags=0x8183),
    "truncated": dns_answer([srv_question], [], [], flags=0x8380),
}

for i, line in enumerate(rfc5424 + rfc3164):
    seeds["syslog"][f"lf-{i}"] = b"\x05" + line + b"\n" + line + b"\r\n"
    seeds["syslog"][f"octet-{i}"] = b"\x10" + str(len(line)).encode() + b" " + line + b"3 abc"
    seeds["logplex"][f"body-{i}"] = b"2\n" + str(len(line)).encode() + b" " + line + b"5 <1>1 "
seeds["logplex"]["no-count"] = b"".join(str(len(l)).encode() + b" " + l for l in rfc5424)

target_dir = os.path.join(here, "corpus")
for target, files in seeds.items():
    path = os.path.join(target_dir, target)
    os.makedirs(path, exist_ok=True)
    for old in os.listdir(path):
        if not old.startswith("regression-"):
            os.remove(os.path.join(path, old))
    for name, data in files.items():
        with open(os.path.join(path, name), "wb") as f:
            f.write(data)
print("wrote", sum(len(f) for f in seeds.values()), "seeds in", len(seeds), "corpora")
