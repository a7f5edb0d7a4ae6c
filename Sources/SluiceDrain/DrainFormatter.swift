import NIOCore
import SluiceProto
import SluiceWire
import SwiftProtobuf

/// Turns stored envelopes into the RFC 5424 lines a drain receives
/// (REFERENCE §4). Envelopes that are not logs give no line.
struct DrainFormatter: Sendable {
    var hostname: String?

    func line(_ envelope: ByteBuffer) -> [UInt8]? {
        guard let decoded = try? Loggregator_V2_Envelope(serializedBytes: Array(envelope.readableBytesView)),
            case .log(let log)? = decoded.message
        else { return nil }
        let tags = decoded.tags.filter { $0.key != "source_type" }.map { (key: $0.key, value: $0.value) }
        let line = DrainLine(
            app: decoded.sourceID, hostname: hostname, sourceType: decoded.tags["source_type"] ?? "",
            instance: decoded.instanceID, isError: log.type == .err, timestamp: decoded.timestamp, tags: tags)
        var payload = log.payload[...]
        // The line gets its own LF; a payload's own line end is not doubled.
        while let last = payload.last, last == 0x0A || last == 0x0D { payload = payload.dropLast() }
        return line.bytes(message: payload)
    }
}
