import NIOCore
import NIOEmbedded
import NIOTestUtils
import SluiceWire
import Testing

@testable import SluiceSyslog

/// `SyslogFrameDecoder`: a syslog TCP stream cut into messages, octet-counted
/// or ended by LF, frame by frame.
@Suite struct SyslogFrameDecoderTests {
    /// A piece of a stream and the message it gives when its last byte arrives.
    struct Segment: Sendable {
        var bytes: String
        var message: String?
    }

    /// `LEN SP MSG`.
    static func counted(_ message: String) -> Segment {
        Segment(bytes: "\(message.utf8.count) \(message)", message: message)
    }

    /// Both framings on one stream, blank lines and empty frames between.
    static let mixed: [Segment] = [
        counted("<13>1 2026-11-24T10:00:00Z host app - - - counted"),
        Segment(bytes: "<14>newline framed\n", message: "<14>newline framed"),
        Segment(bytes: "\r\n", message: nil),
        counted("<15>with\nnewline inside"),
        Segment(bytes: "0 ", message: nil),
        Segment(bytes: "<16>crlf framed\r\n", message: "<16>crlf framed"),
        Segment(bytes: "\n\n", message: nil),
        counted("<17>last"),
    ]

    static func channel(maxMessageBytes: Int = 64) -> EmbeddedChannel {
        EmbeddedChannel(handler: ByteToMessageHandler(SyslogFrameDecoder(maxMessageBytes: maxMessageBytes)))
    }

    static func readAll(_ channel: EmbeddedChannel) throws -> [String] {
        var out: [String] = []
        while let message = try channel.readInbound(as: ByteBuffer.self) { out.append(String(buffer: message)) }
        return out
    }

    /// Writes `text` in one buffer and reads what came out.
    static func write(_ channel: EmbeddedChannel, _ text: String) throws -> [String] {
        try channel.writeInbound(ByteBuffer(string: text))
        return try readAll(channel)
    }

    @Test func octetCountedFrames() throws {
        let channel = Self.channel()
        let stream =
            Self.counted("<13>1 - host app - - - one").bytes + Self.counted("<14>two\nwith a newline").bytes + "0 "
            + Self.counted("<15>three").bytes
        let out = try Self.write(channel, stream)
        #expect(out == ["<13>1 - host app - - - one", "<14>two\nwith a newline", "<15>three"])
        #expect(try channel.finish().isClean)
    }

    @Test func newlineFramesSkipBlankLinesAndTrimCRLF() throws {
        let channel = Self.channel()
        let out = try Self.write(channel, "<13>one\n<13>two\r\n\n\r\n\r\n<13>three\n<13>in\rside\n")
        #expect(out == ["<13>one", "<13>two", "<13>three", "<13>in\rside"])
        #expect(try channel.finish().isClean)
    }

    @Test func bothFramingsMixedOnOneStream() throws {
        let channel = Self.channel()
        let out = try Self.write(channel, Self.mixed.map(\.bytes).joined())
        #expect(out == Self.mixed.compactMap(\.message))
        #expect(try channel.finish().isClean)
    }

    @Test func oneByteAtATime() throws {
        let channel = Self.channel()
        let stream = Array(Self.mixed.map(\.bytes).joined().utf8)
        var out: [String] = []
        var emittedAt: [Int] = []
        for (offset, byte) in stream.enumerated() {
            try channel.writeInbound(ByteBuffer(bytes: [byte]))
            for message in try Self.readAll(channel) {
                out.append(message)
                emittedAt.append(offset)
            }
        }
        #expect(out == Self.mixed.compactMap(\.message))
        // Each message came out with the last byte of its frame, not later.
        var ends: [Int] = []
        var end = 0
        for segment in Self.mixed {
            end += segment.bytes.utf8.count
            if segment.message != nil { ends.append(end - 1) }
        }
        #expect(emittedAt == ends)
        #expect(try channel.finish().isClean)
    }

    @Test func everySplitPointGivesTheSameMessages() throws {
        let stream = Array(Self.mixed.map(\.bytes).joined().utf8)
        for split in 0...stream.count {
            let channel = Self.channel()
            try channel.writeInbound(ByteBuffer(bytes: stream[..<split]))
            try channel.writeInbound(ByteBuffer(bytes: stream[split...]))
            let out = try Self.readAll(channel)
            #expect(out == Self.mixed.compactMap(\.message), "split at \(split)")
            #expect(try channel.finish().isClean, "split at \(split)")
        }
    }

    @Test func verifierAcceptsEachSegment() throws {
        let pairs: [(ByteBuffer, [ByteBuffer])] = Self.mixed.map { segment in
            let outputs = segment.message.map { [ByteBuffer(string: $0)] } ?? []
            return (ByteBuffer(string: segment.bytes), outputs)
        }
        try ByteToMessageDecoderVerifier.verifyDecoder(
            inputOutputPairs: pairs, decoderFactory: { SyslogFrameDecoder(maxMessageBytes: 64) })
    }

    @Test(arguments: ["12x <13>hi\n", "1-2 <13>hi", "7\n<13>hi", "12345678901 x"])
    func octetCountThatIsNotANumberIsAnError(bad: String) throws {
        let channel = Self.channel()
        // What came before the bad frame still comes out.
        let before = try Self.write(channel, "<13>before\n")
        #expect(before == ["<13>before"])
        let error = #expect(throws: WireError.self) { try channel.writeInbound(ByteBuffer(string: bad)) }
        #expect(error?.code == .malformedRequest)
        #expect(try Self.readAll(channel).isEmpty)
        _ = try? channel.finish()
    }

    @Test func octetCountOverTheLimitIsAnError() throws {
        // Refused as soon as the count is read, before the message arrives.
        let channel = Self.channel(maxMessageBytes: 16)
        let error = #expect(throws: WireError.self) { try channel.writeInbound(ByteBuffer(string: "17 ")) }
        #expect(error?.code == .frameTooLarge)
        #expect(try Self.readAll(channel).isEmpty)
        _ = try? channel.finish()

        let huge = Self.channel(maxMessageBytes: 16)
        let hugeError = #expect(throws: WireError.self) { try huge.writeInbound(ByteBuffer(string: "9999999999 x")) }
        #expect(hugeError?.code == .frameTooLarge)
        _ = try? huge.finish()

        // The limit itself is accepted.
        let exact = Self.channel(maxMessageBytes: 16)
        let out = try Self.write(exact, "16 <13>0123456789ab")
        #expect(out == ["<13>0123456789ab"])
        #expect(try exact.finish().isClean)
    }

    @Test func newlineFramedMessageOverTheLimitWithoutLFIsAnError() throws {
        // 16 bytes with no LF may still end; the 17th makes it too long.
        let channel = Self.channel(maxMessageBytes: 16)
        let waiting = try Self.write(channel, "<13>0123456789ab")
        #expect(waiting.isEmpty)
        let error = #expect(throws: WireError.self) { try channel.writeInbound(ByteBuffer(string: "c")) }
        #expect(error?.code == .frameTooLarge)
        #expect(try Self.readAll(channel).isEmpty)
        _ = try? channel.finish()

        // Those 16 bytes then their LF are a message.
        let exact = Self.channel(maxMessageBytes: 16)
        let none = try Self.write(exact, "<13>0123456789ab")
        #expect(none.isEmpty)
        let out = try Self.write(exact, "\n")
        #expect(out == ["<13>0123456789ab"])
        #expect(try exact.finish().isClean)
    }

    @Test(arguments: [("<13>last", "<13>last"), ("<13>last\r", "<13>last"), ("<13>a b c", "<13>a b c")])
    func lastMessageWithoutLFIsDeliveredAtEOF(tail: String, message: String) throws {
        let channel = Self.channel()
        let first = try Self.write(channel, "<13>first\n" + tail)
        #expect(first == ["<13>first"])
        let leftOver = try channel.finish()
        #expect(!leftOver.isClean)
        let last = try Self.readAll(channel)
        #expect(last == [message])
    }

    @Test func onlyALineEndAtEOFGivesNothing() throws {
        // A CR alone is a blank line, not an empty message.
        let channel = Self.channel()
        let out = try Self.write(channel, "<13>first\n\r")
        #expect(out == ["<13>first"])
        #expect(try channel.finish().isClean)
    }

    @Test(arguments: ["20 <13>short", "12", "5 ", "3 ab"])
    func connectionEndingInsideAnOctetCountedFrameIsAnError(tail: String) throws {
        let channel = Self.channel()
        let first = try Self.write(channel, Self.counted("<13>whole").bytes + tail)
        #expect(first == ["<13>whole"])
        let error = #expect(throws: WireError.self) { try channel.finish() }
        #expect(error?.code == .truncatedFrame)
    }
}
