import FoundationEssentials
import NIOCore
import SluiceProto
import SwiftProtobuf
import SluiceWire

/// Envelopes in the JSON that the RLP gateway and log-cache answer with
/// (REFERENCE §8): protobuf's JSON mapping with the proto field names and
/// every field written, set or not (as Go's jsonpb with `OrigName` and
/// `EmitDefaults`): int64 and uint64 as strings, bytes as base64, enums by
/// name, maps as objects. Fields in the order the schema declares them; of
/// the `message` oneof only the one that is set.
enum EnvelopeJSON {
    /// `{"batch":[…]}` of the envelopes' bytes; bytes that do not decode
    /// are left out.
    static func batch(_ envelopes: some Sequence<ByteBuffer>) -> String {
        var out = #"{"batch":["#
        var first = true
        for bytes in envelopes {
            guard let envelope = try? Loggregator_V2_Envelope(serializedBytes: Array(bytes.readableBytesView)) else {
                continue
            }
            if !first { out += "," }
            first = false
            write(envelope, into: &out)
        }
        out += "]}"
        return out
    }

    static func write(_ envelope: Loggregator_V2_Envelope, into out: inout String) {
        out += #"{"timestamp":"\#(envelope.timestamp)","source_id":"#
        string(envelope.sourceID, into: &out)
        out += #","instance_id":"#
        string(envelope.instanceID, into: &out)
        out += #","deprecated_tags":"#
        object(envelope.deprecatedTags, into: &out, value)
        out += #","tags":"#
        object(envelope.tags, into: &out, string)
        switch envelope.message {
        case .log(let log):
            out += #","log":{"payload":"\#(Data(log.payload).base64EncodedString())","type":"\#(log.type == .err ? "ERR" : "OUT")"}"#
        case .counter(let counter):
            out += #","counter":{"name":"#
            string(counter.name, into: &out)
            out += #","delta":"\#(counter.delta)","total":"\#(counter.total)"}"#
        case .gauge(let gauge):
            out += #","gauge":{"metrics":"#
            object(gauge.metrics, into: &out) { metric, out in
                out += #"{"unit":"#
                string(metric.unit, into: &out)
                out += #","value":"#
                double(metric.value, into: &out)
                out += "}"
            }
            out += "}"
        case .timer(let timer):
            out += #","timer":{"name":"#
            string(timer.name, into: &out)
            out += #","start":"\#(timer.start)","stop":"\#(timer.stop)"}"#
        case .event(let event):
            out += #","event":{"title":"#
            string(event.title, into: &out)
            out += #","body":"#
            string(event.body, into: &out)
            out += "}"
        case nil:
            break
        }
        out += "}"
    }

    /// A map as a JSON object, keys in order (Go's encoder sorts them too).
    private static func object<Value>(
        _ map: [String: Value], into out: inout String, _ value: (Value, inout String) -> Void
    ) {
        out += "{"
        for (index, key) in map.keys.sorted().enumerated() {
            if index > 0 { out += "," }
            string(key, into: &out)
            out += ":"
            value(map[key]!, &out)
        }
        out += "}"
    }

    private static func string(_ text: String, into out: inout String) {
        out += "\""
        out += jsonEscape(text)
        out += "\""
    }

    /// A `Value`: the member of its oneof that is set, or `{}`.
    private static func value(_ value: Loggregator_V2_Value, into out: inout String) {
        switch value.data {
        case .text(let text):
            out += #"{"text":"#
            string(text, into: &out)
            out += "}"
        case .integer(let integer):
            out += #"{"integer":"\#(integer)"}"#
        case .decimal(let decimal):
            out += #"{"decimal":"#
            double(decimal, into: &out)
            out += "}"
        case nil:
            out += "{}"
        }
    }

    /// A double as protobuf's JSON mapping writes it: a number, whole ones
    /// without a fraction (as Go writes them), and the strings "NaN",
    /// "Infinity" and "-Infinity".
    static func double(_ value: Double, into out: inout String) {
        if value.isNaN {
            out += #""NaN""#
        } else if value.isInfinite {
            out += value < 0 ? #""-Infinity""# : #""Infinity""#
        } else if value == value.rounded(), abs(value) < 1e21 {
            out += String(Int64(exactly: value).map(String.init) ?? "\(value)")
        } else {
            out += "\(value)"
        }
    }
}
