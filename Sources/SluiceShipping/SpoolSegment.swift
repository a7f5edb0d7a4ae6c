import SluiceWire

/// The format of the agent's spool on disk, and the reading of it after a
/// crash. Plain values, no files: `Spool` does the I/O.
///
/// A segment file (`segment-<first sequence, 20 digits>.spool`) is records
/// one after another, each a frame exactly as it goes to a controller
/// (header with its sequence, then the batch) behind 16 bytes:
///
///     magic "SLS1" | frame length u32 | envelopes u32 | CRC-32C u32
///
/// all big-endian; the CRC covers the envelope count's 4 bytes and the
/// frame. A record cut short by a crash, or whose checksum is wrong, ends
/// what is read of its segment: the bytes after it cannot be trusted to
/// start a record.
///
/// The state file (`state`) is 36 bytes: magic "SLSS" | version u32 (1) |
/// sender id u64 | newest sequence acknowledged u64 | sequences reserved
/// up to u64 | CRC-32C u32 of the 32 before it. Numbers are reserved (and
/// the file synced) ahead of their use, so that a restart never gives a
/// number twice, even one whose frame never reached the disk: servers
/// would take a second frame under it for one they had.
public enum SpoolSegment {
    public static let recordHeaderSize = 16
    static let recordMagic: UInt32 = 0x534C_5331  // "SLS1"
    static let stateMagic: UInt32 = 0x534C_5353  // "SLSS"
    public static let stateSize = 36

    /// One record found in a segment.
    public struct Record: Equatable, Sendable {
        /// Where its header starts in the segment.
        public var offset: Int
        public var frameLength: Int
        public var envelopes: Int
        public var sequence: UInt64
        /// Where its frame starts.
        public var frameOffset: Int { offset + recordHeaderSize }
        public var end: Int { frameOffset + frameLength }
    }

    /// What ended the reading of a segment before its end.
    public struct Damage: Equatable, Sendable, CustomStringConvertible {
        public enum Kind: String, Sendable {
            /// The segment ends inside a record: a write cut short.
            case torn = "a record cut short"
            case badChecksum = "a record whose checksum does not match"
            case notARecord = "bytes that are not a record"
        }
        public var kind: Kind
        public var offset: Int
        /// Bytes from `offset` to the segment's end, left unread.
        public var skippedBytes: Int

        public init(kind: Kind, offset: Int, skippedBytes: Int) {
            self.kind = kind
            self.offset = offset
            self.skippedBytes = skippedBytes
        }

        public var description: String { "\(kind.rawValue) at byte \(offset) (\(skippedBytes) bytes skipped)" }
    }

    public struct Scan: Sendable {
        public var records: [Record] = []
        public var damage: Damage?
    }

    /// Reads the records of a segment's bytes, up to the first damage.
    public static func scan(_ bytes: UnsafeRawBufferPointer, maxFrameBytes: Int = FrameHeader.defaultMaxPayload + FrameHeader.size)
        -> Scan
    {
        var scan = Scan()
        var offset = 0
        func damaged(_ kind: Damage.Kind) -> Scan {
            scan.damage = Damage(kind: kind, offset: offset, skippedBytes: bytes.count - offset)
            return scan
        }
        while offset < bytes.count {
            guard bytes.count - offset >= recordHeaderSize else {
                return damaged(bytes.count - offset >= 4 && bytes.loadBigEndian(UInt32.self, at: offset) != recordMagic ? .notARecord : .torn)
            }
            guard bytes.loadBigEndian(UInt32.self, at: offset) == recordMagic else { return damaged(.notARecord) }
            let length = Int(bytes.loadBigEndian(UInt32.self, at: offset + 4))
            let envelopes = Int(bytes.loadBigEndian(UInt32.self, at: offset + 8))
            let crc = bytes.loadBigEndian(UInt32.self, at: offset + 12)
            guard length >= FrameHeader.size, length <= maxFrameBytes else { return damaged(.notARecord) }
            let frameOffset = offset + recordHeaderSize
            guard bytes.count - frameOffset >= length else { return damaged(.torn) }
            let frame = UnsafeRawBufferPointer(rebasing: bytes[frameOffset..<(frameOffset + length)])
            guard checksum(envelopes: UInt32(envelopes), frame: frame) == crc else { return damaged(.badChecksum) }
            let sequence = frame.loadBigEndian(UInt64.self, at: 8)
            scan.records.append(Record(offset: offset, frameLength: length, envelopes: envelopes, sequence: sequence))
            offset = frameOffset + length
        }
        return scan
    }

    /// The 16 bytes that go before `frame` on disk.
    public static func recordHeader(frame: UnsafeRawBufferPointer, envelopes: Int) -> [UInt8] {
        var header = [UInt8]()
        header.reserveCapacity(recordHeaderSize)
        header.appendBigEndian(recordMagic)
        header.appendBigEndian(UInt32(frame.count))
        header.appendBigEndian(UInt32(envelopes))
        header.appendBigEndian(checksum(envelopes: UInt32(envelopes), frame: frame))
        return header
    }

    static func checksum(envelopes: UInt32, frame: UnsafeRawBufferPointer) -> UInt32 {
        var count = envelopes.bigEndian
        let head = withUnsafeBytes(of: &count) { CRC32C.checksum($0) }
        return CRC32C.checksum(frame, continuing: head)
    }

    /// The state file's bytes.
    public static func state(sender: UInt64, acknowledged: UInt64, reserved: UInt64) -> [UInt8] {
        var bytes = [UInt8]()
        bytes.reserveCapacity(stateSize)
        bytes.appendBigEndian(stateMagic)
        bytes.appendBigEndian(UInt32(1))
        bytes.appendBigEndian(sender)
        bytes.appendBigEndian(acknowledged)
        bytes.appendBigEndian(reserved)
        bytes.appendBigEndian(CRC32C.checksum(bytes))
        return bytes
    }

    /// The sender id, newest acknowledged sequence and the sequences
    /// reserved of a state file's bytes; nil if they are not a whole,
    /// intact state.
    public static func parseState(_ bytes: [UInt8]) -> (sender: UInt64, acknowledged: UInt64, reserved: UInt64)? {
        guard bytes.count >= stateSize else { return nil }
        return bytes.withUnsafeBytes { raw in
            guard raw.loadBigEndian(UInt32.self, at: 0) == stateMagic, raw.loadBigEndian(UInt32.self, at: 4) == 1,
                CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[0..<32])) == raw.loadBigEndian(UInt32.self, at: 32)
            else { return nil }
            let sender = raw.loadBigEndian(UInt64.self, at: 8)
            guard sender != 0 else { return nil }
            return (sender, raw.loadBigEndian(UInt64.self, at: 16), raw.loadBigEndian(UInt64.self, at: 24))
        }
    }

    /// A segment's file name, and the first sequence a name gives.
    public static func fileName(firstSequence: UInt64) -> String {
        let digits = String(firstSequence)
        return "segment-" + String(repeating: "0", count: max(0, 20 - digits.count)) + digits + ".spool"
    }

    public static func firstSequence(ofFileName name: String) -> UInt64? {
        guard name.hasPrefix("segment-"), name.hasSuffix(".spool") else { return nil }
        return UInt64(name.dropFirst("segment-".count).dropLast(".spool".count))
    }
}

extension UnsafeRawBufferPointer {
    fileprivate func loadBigEndian<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T {
        T(bigEndian: loadUnaligned(fromByteOffset: offset, as: T.self))
    }
}

extension [UInt8] {
    fileprivate mutating func appendBigEndian<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.bigEndian) { append(contentsOf: $0) }
    }
}
