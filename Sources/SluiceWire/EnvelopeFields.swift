/// The envelope fields Sluice reads without decoding: `source_id` (the
/// routing key, field 2), `timestamp` (field 1, for time-ordered merges),
/// and whether it is a Log (field 4: only logs go to drains).
public struct EnvelopeFields: Hashable, Sendable {
    /// Byte range of `source_id` within the envelope's bytes; empty if absent.
    public var sourceID: Range<Int>
    /// Nanoseconds since the epoch; 0 if absent.
    public var timestamp: Int64
    /// Whether the envelope's message is a Log.
    public var isLog: Bool

    public init(sourceID: Range<Int>, timestamp: Int64, isLog: Bool = false) {
        self.sourceID = sourceID
        self.timestamp = timestamp
        self.isLog = isLog
    }

    /// Walks the top level of one envelope, checking its structure, and
    /// returns the routing key and timestamp. Nested messages are skipped.
    public static func scan(_ envelope: UnsafeRawBufferPointer) throws(WireError) -> EnvelopeFields {
        var reader = ProtoReader(envelope)
        var sourceID = 0..<0
        var timestamp: Int64 = 0
        var isLog = false
        while let (field, wireType) = try reader.readTag() {
            switch (field, wireType) {
            case (1, .varint):
                timestamp = Int64(bitPattern: try reader.readVarint())
            case (2, .lengthDelimited):
                sourceID = try reader.readLengthDelimited()
            case (1, _), (2, _):
                throw WireError(.malformedBatch, "envelope field \(field) has wire type \(wireType.rawValue)")
            // The message oneof: log 4, counter 5, gauge 6, timer 7, event
            // 10; a later one replaces an earlier one. With any wire type
            // but length-delimited it is an unknown field to protobuf's
            // decoders, and so changes nothing (found by bin/fuzz).
            case (4, .lengthDelimited):
                isLog = true
                _ = try reader.readLengthDelimited()
            case (5, .lengthDelimited), (6, .lengthDelimited), (7, .lengthDelimited), (10, .lengthDelimited):
                isLog = false
                _ = try reader.readLengthDelimited()
            default:
                try reader.skip(wireType)
            }
        }
        return EnvelopeFields(sourceID: sourceID, timestamp: timestamp, isLog: isLog)
    }

    /// The field number of the envelope's `message` (log 4, counter 5,
    /// gauge 6, timer 7, event 10) as protobuf's decoders read it: the last
    /// length-delimited one. Nil if it has none or is malformed. Not for
    /// the hot path: it walks the envelope again.
    public static func messageField(of envelope: UnsafeRawBufferPointer) -> UInt64? {
        var reader = ProtoReader(envelope)
        var found: UInt64? = nil
        do {
            while let (field, wireType) = try reader.readTag() {
                if wireType == .lengthDelimited && isMessageField(field) { found = field }
                try reader.skip(wireType)
            }
        } catch {
            return nil
        }
        return found
    }

    /// Whether `field` is one of the envelope's `message` oneof: log 4,
    /// counter 5, gauge 6, timer 7, event 10.
    @inlinable
    public static func isMessageField(_ field: UInt64) -> Bool {
        (4...7).contains(field) || field == 10
    }
}

/// Walks an `EnvelopeBatch` payload (repeated field 1) envelope by envelope.
public enum EnvelopeBatchScanner {
    /// Checks the whole batch's structure first, then calls `body` with each
    /// envelope's byte range in `batch` and its routing fields. A malformed
    /// batch throws before `body` sees any envelope, so a bad frame is
    /// rejected whole.
    public static func forEach(
        in batch: UnsafeRawBufferPointer,
        expectedCount: Int? = nil,
        _ body: (Range<Int>, EnvelopeFields) -> Void
    ) throws(WireError) {
        let count = try validate(batch)
        if let expectedCount, expectedCount != count {
            throw WireError(
                .malformedBatch, "the frame names \(expectedCount) envelopes but the batch holds \(count)")
        }
        var reader = ProtoReader(batch)
        while let (field, wireType) = try reader.readTag() {
            guard field == 1 else {
                try reader.skip(wireType)
                continue
            }
            let range = try reader.readLengthDelimited()
            let fields = try EnvelopeFields.scan(UnsafeRawBufferPointer(rebasing: batch[range]))
            body(range, fields)
        }
    }

    /// Throws unless `batch` is a well-formed `EnvelopeBatch` at the top
    /// level of it and of each envelope; returns the number of envelopes.
    @discardableResult
    public static func validate(_ batch: UnsafeRawBufferPointer) throws(WireError) -> Int {
        var reader = ProtoReader(batch)
        var count = 0
        while let (field, wireType) = try reader.readTag() {
            if field == 1 {
                guard wireType == .lengthDelimited else {
                    throw WireError(.malformedBatch, "batch field 1 has wire type \(wireType.rawValue)")
                }
                let range = try reader.readLengthDelimited()
                _ = try EnvelopeFields.scan(UnsafeRawBufferPointer(rebasing: batch[range]))
                count += 1
            } else {
                try reader.skip(wireType)
            }
        }
        return count
    }
}

/// Writes protobuf framing for envelopes appended to a batch.
public enum ProtoVarint {
    /// Bytes needed to write `value` as a varint.
    @inlinable
    public static func size(_ value: UInt64) -> Int {
        var v = value
        var n = 1
        while v >= 0x80 {
            v >>= 7
            n += 1
        }
        return n
    }

    /// Calls `emit` with each byte of `value` as a varint.
    @inlinable
    public static func encode(_ value: UInt64, _ emit: (UInt8) -> Void) {
        var v = value
        while v >= 0x80 {
            emit(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        emit(UInt8(v))
    }

    /// The tag byte of field 1, length-delimited: an envelope in a batch.
    public static let batchEnvelopeTag: UInt8 = 0x0A
}
