import Testing

@testable import SluiceWire

func parseHeader(_ bytes: [UInt8], maxPayload: Int = FrameHeader.defaultMaxPayload) throws(WireError) -> FrameHeader {
    try withBuffer(bytes) { (buffer) throws(WireError) in try FrameHeader.parse(buffer, maxPayload: maxPayload) }
}

/// 16 raw header bytes: length, version, type, flags, sequence; all big-endian.
func rawHeader(length: UInt32 = 0, version: UInt8 = 1, type: UInt8 = 1, flags: UInt16 = 0, sequence: UInt64 = 0) -> [UInt8] {
    var out: [UInt8] = []
    for shift in stride(from: 24, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: length >> UInt32(shift))) }
    out.append(version)
    out.append(type)
    out.append(UInt8(flags >> 8))
    out.append(UInt8(flags & 0xFF))
    for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: sequence >> UInt64(shift))) }
    return out
}

@Suite struct FrameHeaderTests {
    @Test func layoutIsSixteenBigEndianBytes() {
        let header = FrameHeader(
            length: 0x0102_0304, type: .recentResponse, flags: .final, sequence: 0x0A0B_0C0D_0E0F_1011)
        #expect(FrameHeader.size == 16)
        #expect(header.bytes == [
            0x01, 0x02, 0x03, 0x04,  // length
            0x01,  // version
            0x05,  // type
            0x00, 0x01,  // flags
            0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F, 0x10, 0x11,  // sequence
        ])
        let other = FrameHeader(
            length: 0xFFFF_FFFE, type: .envelopes, flags: FrameFlags(rawValue: 0xABCD), sequence: 1, version: 9)
        #expect(other.bytes == [0xFF, 0xFF, 0xFF, 0xFE, 0x09, 0x01, 0xAB, 0xCD, 0, 0, 0, 0, 0, 0, 0, 0x01])
        #expect(other.bytes == rawHeader(length: 0xFFFF_FFFE, version: 9, type: 1, flags: 0xABCD, sequence: 1))
    }

    @Test func frameTypeNumbers() {
        let expected: [(FrameType, UInt8)] = [
            (.envelopes, 1), (.subscribe, 2), (.unsubscribe, 3), (.recentRequest, 4), (.recentResponse, 5), (.stream, 6),
            (.ack, 7), (.hello, 8), (.leaving, 9), (.handoverRequest, 10),
        ]
        #expect(FrameType.allCases.count == expected.count)
        for (type, raw) in expected {
            #expect(type.rawValue == raw)
            #expect(FrameHeader(length: 0, type: type, sequence: 0).bytes[5] == raw)
        }
    }

    @Test(arguments: FrameType.allCases)
    func roundTrip(_ type: FrameType) throws {
        for flags in [FrameFlags(), .final, FrameFlags(rawValue: 0x8000), FrameFlags(rawValue: 0xFFFF)] {
            for sequence in [UInt64(0), 1, 0x0123_4567_89AB_CDEF, UInt64.max] {
                for length in [UInt32(0), 1, 65_536, UInt32(FrameHeader.defaultMaxPayload)] {
                    let header = FrameHeader(length: length, type: type, flags: flags, sequence: sequence)
                    let bytes = header.bytes
                    #expect(bytes.count == 16)
                    let parsed = try parseHeader(bytes)
                    #expect(parsed == header)
                    #expect(parsed.version == FrameHeader.currentVersion)
                    #expect(parsed.sequence == sequence)
                    #expect(parsed.flags == flags)
                    #expect(parsed.length == length)
                    #expect(parsed.type == type)
                }
            }
        }
    }

    @Test func parsesHandWrittenBytes() throws {
        let parsed = try parseHeader(rawHeader(length: 300, type: 6, flags: 1, sequence: UInt64.max))
        #expect(parsed.length == 300)
        #expect(parsed.type == .stream)
        #expect(parsed.flags.contains(.final))
        #expect(parsed.sequence == UInt64.max)
    }

    @Test(arguments: [UInt8(0), 11, 200, 255])
    func unknownFrameType(_ type: UInt8) {
        let error = #expect(throws: WireError.self) { try parseHeader(rawHeader(type: type)) }
        #expect(error?.code == .unknownFrameType)
    }

    @Test(arguments: [UInt8(0), 2, 255])
    func unsupportedVersion(_ version: UInt8) {
        let error = #expect(throws: WireError.self) { try parseHeader(rawHeader(version: version, type: 1)) }
        #expect(error?.code == .unsupportedVersion)
    }

    @Test func frameTooLarge() throws {
        #expect(FrameHeader.defaultMaxPayload == 4 * 1024 * 1024)
        let max = UInt32(FrameHeader.defaultMaxPayload)
        #expect(try parseHeader(rawHeader(length: max)).length == max)
        for length in [max + 1, max * 2, UInt32.max] {
            let error = #expect(throws: WireError.self) { try parseHeader(rawHeader(length: length)) }
            #expect(error?.code == .frameTooLarge)
        }

        #expect(try parseHeader(rawHeader(length: 100), maxPayload: 100).length == 100)
        #expect(try parseHeader(rawHeader(length: 0), maxPayload: 0).length == 0)
        let error = #expect(throws: WireError.self) { try parseHeader(rawHeader(length: 101), maxPayload: 100) }
        #expect(error?.code == .frameTooLarge)
        let zero = #expect(throws: WireError.self) { try parseHeader(rawHeader(length: 1), maxPayload: 0) }
        #expect(zero?.code == .frameTooLarge)
    }
}
