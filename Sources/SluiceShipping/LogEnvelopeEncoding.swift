import NIOCore
import SluiceTransport
import SluiceWire

/// A Log envelope written straight into bytes, for emitters that send many
/// lines: no message objects, one write per field.
public struct LogEnvelopeFields: Sendable {
    public var sourceID: String
    public var instanceID: String
    public var sourceType: String
    public var isError: Bool

    public init(sourceID: String, instanceID: String = "0", sourceType: String = "APP/PROC/WEB", isError: Bool = false) {
        self.sourceID = sourceID
        self.instanceID = instanceID
        self.sourceType = sourceType
        self.isError = isError
    }
}

/// A tag of an envelope (`tags`, field 9): a key and a value.
public struct LogTag: Hashable, Sendable {
    public var key: String
    public var value: String

    public init(_ key: String, _ value: String) {
        self.key = key
        self.value = value
    }

    /// The tag on each piece of a line too long for one envelope: `1`, `2`,
    /// … and on the last piece `N/N`, so a reader can put the line together.
    public static func part(_ index: Int, last: Bool) -> LogTag {
        LogTag("sluice_part", last ? "\(index)/\(index)" : "\(index)")
    }
}

extension ByteBuffer {
    /// Appends one Log envelope as an entry of an `EnvelopeBatch` (field 1):
    /// timestamp (1), source_id (2), log (4: payload 1, type 2),
    /// instance_id (8), tags (9: source_type, then `extraTags`).
    public mutating func writeLogEnvelopeEntry(
        _ fields: LogEnvelopeFields, timestamp: Int64, payload: UnsafeRawBufferPointer, extraTags: [LogTag] = []
    ) {
        let sourceLength = fields.sourceID.utf8.count
        let instanceLength = fields.instanceID.utf8.count
        let payloadField = Self.lengthDelimitedSize(payload.count)
        let logLength = payloadField + (fields.isError ? 2 : 0)
        var envelopeLength = 1 + ProtoVarint.size(UInt64(bitPattern: timestamp))
        envelopeLength += Self.lengthDelimitedSize(sourceLength)
        envelopeLength += Self.lengthDelimitedSize(logLength)
        if instanceLength > 0 { envelopeLength += Self.lengthDelimitedSize(instanceLength) }
        if !fields.sourceType.isEmpty {
            envelopeLength += Self.lengthDelimitedSize(Self.tagEntryLength("source_type", fields.sourceType))
        }
        for tag in extraTags { envelopeLength += Self.lengthDelimitedSize(Self.tagEntryLength(tag.key, tag.value)) }

        // One capacity check and raw stores: this is the hot path of
        // `sluice run` and the agent's syslog input.
        let total = 1 + ProtoVarint.size(UInt64(envelopeLength)) + envelopeLength
        writeWithUnsafeMutableBytes(minimumWritableBytes: total) { out in
            var writer = RawWriter(out)
            writer.byte(ProtoVarint.batchEnvelopeTag)
            writer.varint(UInt64(envelopeLength))
            writer.byte(0x08)
            writer.varint(UInt64(bitPattern: timestamp))
            writer.field(0x12, fields.sourceID)
            writer.byte(0x22)
            writer.varint(UInt64(logLength))
            writer.byte(0x0A)
            writer.varint(UInt64(payload.count))
            writer.bytes(payload)
            if fields.isError {
                writer.byte(0x10)
                writer.byte(1)
            }
            if instanceLength > 0 { writer.field(0x42, fields.instanceID) }
            if !fields.sourceType.isEmpty { writer.tag("source_type", fields.sourceType) }
            for tag in extraTags { writer.tag(tag.key, tag.value) }
            return writer.offset
        }
    }

    fileprivate static func tagEntryLength(_ key: String, _ value: String) -> Int {
        lengthDelimitedSize(key.utf8.count) + lengthDelimitedSize(value.utf8.count)
    }

    static func lengthDelimitedSize(_ length: Int) -> Int {
        1 + ProtoVarint.size(UInt64(length)) + length
    }
}

/// Stores protobuf fields into memory already reserved for them.
private struct RawWriter {
    let out: UnsafeMutableRawBufferPointer
    var offset = 0

    init(_ out: UnsafeMutableRawBufferPointer) {
        self.out = out
    }

    mutating func byte(_ value: UInt8) {
        out[offset] = value
        offset += 1
    }

    mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            byte(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        byte(UInt8(v))
    }

    mutating func bytes(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        (out.baseAddress! + offset).copyMemory(from: base, byteCount: bytes.count)
        offset += bytes.count
    }

    /// A length-delimited string field: tag, length, UTF-8.
    mutating func field(_ tag: UInt8, _ text: String) {
        byte(tag)
        var text = text
        text.withUTF8 { utf8 in
            varint(UInt64(utf8.count))
            bytes(UnsafeRawBufferPointer(utf8))
        }
    }

    /// One entry of the `tags` map: field 9, holding key (1) and value (2).
    mutating func tag(_ key: String, _ value: String) {
        byte(0x4A)
        varint(UInt64(ByteBuffer.tagEntryLength(key, value)))
        field(0x0A, key)
        field(0x12, value)
    }
}

extension BatchFrameBuilder {
    /// Appends a Log envelope written straight from its fields.
    public mutating func appendLog(
        _ fields: LogEnvelopeFields, timestamp: Int64, payload: UnsafeRawBufferPointer, extraTags: [LogTag] = []
    ) {
        appendEntry(reserving: payload.count + 128) {
            $0.writeLogEnvelopeEntry(fields, timestamp: timestamp, payload: payload, extraTags: extraTags)
        }
    }
}
