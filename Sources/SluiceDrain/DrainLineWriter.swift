import SluiceSyslog
import SluiceWire

/// Writes the drain line of a stored envelope straight from its bytes:
/// the same line `DrainLine` builds from decoded fields (REFERENCE §4),
/// without decoding into objects or allocating per line. A runner keeps one
/// writer and one output array and reuses both.
public struct DrainLineWriter {
    /// The drain's `?hostname=`, or nil for the app id.
    public var hostname: String?

    private var tags: [(key: Range<Int>, value: Range<Int>)] = []
    private var cachedSecond: Int64 = .min
    private var cachedTime: [UInt8] = []

    public init(hostname: String? = nil) {
        self.hostname = hostname
        tags.reserveCapacity(16)
    }

    /// Appends the line (ending in LF) of a Log envelope to `out`; returns
    /// false, appending nothing, for any other envelope.
    public mutating func append(envelope: UnsafeRawBufferPointer, to out: inout [UInt8]) throws(WireError) -> Bool {
        var reader = ProtoReader(envelope)
        var timestamp: Int64 = 0
        var app = 0..<0
        var instance = 0..<0
        var sourceType: Range<Int>? = nil
        var payload = 0..<0
        var isError = false
        var isLog = false
        tags.removeAll(keepingCapacity: true)
        while let (field, wireType) = try reader.readTag() {
            switch (field, wireType) {
            case (1, .varint):
                timestamp = Int64(bitPattern: try reader.readVarint())
            case (2, .lengthDelimited):
                app = try reader.readLengthDelimited()
            case (8, .lengthDelimited):
                instance = try reader.readLengthDelimited()
            case (9, .lengthDelimited):
                let entry = try reader.readLengthDelimited()
                let (key, value) = try Self.mapEntry(envelope, entry)
                if Self.equals(envelope, key, "source_type") {
                    sourceType = value
                } else if !key.isEmpty {
                    tags.append((key, value))
                }
            case (4, .lengthDelimited):
                let log = try reader.readLengthDelimited()
                isLog = true
                (payload, isError) = try Self.log(envelope, log)
            case (5, .lengthDelimited), (6, .lengthDelimited), (7, .lengthDelimited), (10, .lengthDelimited):
                isLog = false
                try reader.skip(wireType)
            default:
                try reader.skip(wireType)
            }
        }
        guard isLog else { return false }

        out.append(contentsOf: isError ? Self.errPrefix : Self.outPrefix)
        appendTime(timestamp, to: &out)
        out.append(0x20)
        if let hostname {
            SyslogFormat.appendToken(hostname, maxLength: 255, to: &out)
        } else {
            Self.appendToken(envelope, app, nil, maxLength: 255, to: &out)
        }
        out.append(0x20)
        Self.appendToken(envelope, app, nil, maxLength: 48, to: &out)
        out.append(0x20)
        // PROCID: [source_type/instance], cut to 128 with its brackets.
        let type = sourceType.flatMap { $0.isEmpty ? nil : $0 }
        Self.appendToken(
            envelope, type ?? instance, type != nil && !instance.isEmpty ? instance : nil, maxLength: 128,
            bracketed: true, to: &out)
        out.append(contentsOf: Self.noMsgID)
        if tags.isEmpty {
            out.append(UInt8(ascii: "-"))
        } else {
            tags.sort { Self.less(envelope, $0.key, $1.key) }
            out.append(contentsOf: Self.tagsOpen)
            for tag in tags {
                SyslogFormat.appendParam(name: envelope[tag.key], value: envelope[tag.value], to: &out)
            }
            out.append(UInt8(ascii: "]"))
        }
        out.append(0x20)
        // The line gets its own LF; a payload's own line end is not doubled.
        var end = payload.upperBound
        while end > payload.lowerBound && (envelope[end - 1] == 0x0A || envelope[end - 1] == 0x0D) { end -= 1 }
        for byte in envelope[payload.lowerBound..<end] where byte != 0 { out.append(byte) }
        out.append(0x0A)
        return true
    }

    static let outPrefix: [UInt8] = Array("<14>1 ".utf8)
    static let errPrefix: [UInt8] = Array("<11>1 ".utf8)
    static let noMsgID: [UInt8] = Array(" - ".utf8)
    static let tagsOpen: [UInt8] = Array("[\(DrainLine.tagsID)".utf8)

    /// `YYYY-MM-DDTHH:MM:SS.uuuuuuZ`; the part up to the seconds is kept
    /// from the previous line when the second is the same.
    private mutating func appendTime(_ nanoseconds: Int64, to out: inout [UInt8]) {
        let (seconds, fraction) = WallClock.splitSeconds(nanoseconds)
        if seconds != cachedSecond {
            cachedSecond = seconds
            cachedTime = Array(WallClock.utcTime(nanoseconds: seconds * 1_000_000_000).utf8.dropLast(8))
        }
        out.append(contentsOf: cachedTime)
        out.append(UInt8(ascii: "."))
        var micros = Int(fraction / 1000)
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &digits) { buffer in
            for index in stride(from: 5, through: 0, by: -1) {
                buffer[index] = UInt8(ascii: "0") + UInt8(micros % 10)
                micros /= 10
            }
        }
        withUnsafeBytes(of: digits) { out.append(contentsOf: $0) }
        out.append(UInt8(ascii: "Z"))
    }

    /// PRINTUSASCII (33–126) of `first`, then `/` and `second` if given, at
    /// most `maxLength` bytes in all (brackets included); `-` if empty.
    static func appendToken(
        _ bytes: UnsafeRawBufferPointer, _ first: Range<Int>, _ second: Range<Int>?, maxLength: Int,
        bracketed: Bool = false, to out: inout [UInt8]
    ) {
        var written = 0
        func put(_ byte: UInt8) {
            guard written < maxLength else { return }
            out.append(byte > 0x20 && byte < 0x7F ? byte : UInt8(ascii: "_"))
            written += 1
        }
        if bracketed { put(UInt8(ascii: "[")) }
        for byte in bytes[first] { put(byte) }
        if let second {
            put(UInt8(ascii: "/"))
            for byte in bytes[second] { put(byte) }
        }
        if bracketed { put(UInt8(ascii: "]")) }
        if written == 0 { out.append(UInt8(ascii: "-")) }
    }

    /// A map<string,string> entry: key (1) and value (2).
    static func mapEntry(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) throws(WireError)
        -> (Range<Int>, Range<Int>)
    {
        var reader = ProtoReader(UnsafeRawBufferPointer(rebasing: bytes[range]))
        var key = range.lowerBound..<range.lowerBound
        var value = range.lowerBound..<range.lowerBound
        while let (field, wireType) = try reader.readTag() {
            switch (field, wireType) {
            case (1, .lengthDelimited):
                let found = try reader.readLengthDelimited()
                key = (found.lowerBound + range.lowerBound)..<(found.upperBound + range.lowerBound)
            case (2, .lengthDelimited):
                let found = try reader.readLengthDelimited()
                value = (found.lowerBound + range.lowerBound)..<(found.upperBound + range.lowerBound)
            default:
                try reader.skip(wireType)
            }
        }
        return (key, value)
    }

    /// A Log: payload (1) and type (2, ERR = 1).
    static func log(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) throws(WireError) -> (Range<Int>, Bool) {
        var reader = ProtoReader(UnsafeRawBufferPointer(rebasing: bytes[range]))
        var payload = range.lowerBound..<range.lowerBound
        var isError = false
        while let (field, wireType) = try reader.readTag() {
            switch (field, wireType) {
            case (1, .lengthDelimited):
                let found = try reader.readLengthDelimited()
                payload = (found.lowerBound + range.lowerBound)..<(found.upperBound + range.lowerBound)
            case (2, .varint):
                isError = try reader.readVarint() == 1
            default:
                try reader.skip(wireType)
            }
        }
        return (payload, isError)
    }

    static func equals(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ text: StaticString) -> Bool {
        guard range.count == text.utf8CodeUnitCount else { return false }
        return text.withUTF8Buffer { expected in bytes[range].elementsEqual(expected) }
    }

    static func less(_ bytes: UnsafeRawBufferPointer, _ a: Range<Int>, _ b: Range<Int>) -> Bool {
        bytes[a].lexicographicallyPrecedes(bytes[b])
    }
}
