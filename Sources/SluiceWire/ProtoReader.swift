/// Just enough of the protobuf wire format to walk a message's top-level
/// fields over raw bytes, without decoding or copying anything.
public struct ProtoReader {
    public enum WireType: UInt8 {
        case varint = 0
        case fixed64 = 1
        case lengthDelimited = 2
        case fixed32 = 5
    }

    public let bytes: UnsafeRawBufferPointer
    public private(set) var index: Int

    public init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
        self.index = 0
    }

    public var isAtEnd: Bool { index >= bytes.count }

    public mutating func readVarint() throws(WireError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while index < bytes.count {
            let byte = bytes[index]
            index += 1
            if shift == 63 && byte > 1 {
                throw WireError(.malformedBatch, "varint overflows 64 bits at byte \(index - 1)")
            }
            result |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
            if shift > 63 { throw WireError(.malformedBatch, "varint longer than 10 bytes at byte \(index - 1)") }
        }
        throw WireError(.malformedBatch, "varint runs past the end of the message")
    }

    /// The next field's number and wire type, or nil at the end.
    public mutating func readTag() throws(WireError) -> (field: UInt64, wireType: WireType)? {
        if isAtEnd { return nil }
        let key = try readVarint()
        let field = key >> 3
        guard field != 0 else { throw WireError(.malformedBatch, "field number 0 at byte \(index)") }
        guard let wireType = WireType(rawValue: UInt8(key & 7)) else {
            throw WireError(.malformedBatch, "unsupported wire type \(key & 7) for field \(field)")
        }
        return (field, wireType)
    }

    /// The byte range of a length-delimited value, which is skipped over.
    public mutating func readLengthDelimited() throws(WireError) -> Range<Int> {
        let length = try readVarint()
        guard length <= UInt64(bytes.count - index) else {
            throw WireError(.malformedBatch, "length \(length) runs past the end of the message")
        }
        let start = index
        index += Int(length)
        return start..<index
    }

    public mutating func skip(_ wireType: WireType) throws(WireError) {
        switch wireType {
        case .varint: _ = try readVarint()
        case .lengthDelimited: _ = try readLengthDelimited()
        case .fixed64: try advance(8)
        case .fixed32: try advance(4)
        }
    }

    private mutating func advance(_ count: Int) throws(WireError) {
        guard bytes.count - index >= count else {
            throw WireError(.malformedBatch, "fixed-width field runs past the end of the message")
        }
        index += count
    }
}
