import NIOCore
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

        writeInteger(ProtoVarint.batchEnvelopeTag)
        writeVarint(UInt64(envelopeLength))
        writeInteger(UInt8(0x08))
        writeVarint(UInt64(bitPattern: timestamp))
        writeInteger(UInt8(0x12))
        writeVarint(UInt64(sourceLength))
        writeString(fields.sourceID)
        writeInteger(UInt8(0x22))
        writeVarint(UInt64(logLength))
        writeInteger(UInt8(0x0A))
        writeVarint(UInt64(payload.count))
        writeBytes(payload)
        if fields.isError {
            writeInteger(UInt8(0x10))
            writeInteger(UInt8(1))
        }
        if instanceLength > 0 {
            writeInteger(UInt8(0x42))
            writeVarint(UInt64(instanceLength))
            writeString(fields.instanceID)
        }
        if !fields.sourceType.isEmpty { writeTagEntry("source_type", fields.sourceType) }
        for tag in extraTags { writeTagEntry(tag.key, tag.value) }
    }

    /// One entry of the `tags` map: field 9, holding key (1) and value (2).
    private mutating func writeTagEntry(_ key: String, _ value: String) {
        writeInteger(UInt8(0x4A))
        writeVarint(UInt64(Self.tagEntryLength(key, value)))
        writeInteger(UInt8(0x0A))
        writeVarint(UInt64(key.utf8.count))
        writeString(key)
        writeInteger(UInt8(0x12))
        writeVarint(UInt64(value.utf8.count))
        writeString(value)
    }

    private static func tagEntryLength(_ key: String, _ value: String) -> Int {
        lengthDelimitedSize(key.utf8.count) + lengthDelimitedSize(value.utf8.count)
    }

    @inlinable
    public mutating func writeVarint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            writeInteger(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        writeInteger(UInt8(v))
    }

    static func lengthDelimitedSize(_ length: Int) -> Int {
        1 + ProtoVarint.size(UInt64(length)) + length
    }
}
