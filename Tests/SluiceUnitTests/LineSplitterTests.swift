import SluiceTransport
import SluiceShipping
import Testing

/// `LineSplitter`: a byte stream cut into lines, long lines into tagged pieces.
@Suite struct LineSplitterTests {
    /// One call of the emit closure.
    struct Emitted: Equatable, CustomStringConvertible {
        var bytes: [UInt8]
        var tag: LogTag?

        init(_ text: String, _ tag: LogTag? = nil) {
            self.bytes = Array(text.utf8)
            self.tag = tag
        }

        init(bytes: UnsafeRawBufferPointer, tag: LogTag?) {
            self.bytes = Array(bytes)
            self.tag = tag
        }

        var description: String {
            let text = String(decoding: bytes, as: UTF8.self).debugDescription
            guard let tag else { return text }
            return "\(text) [\(tag.key)=\(tag.value)]"
        }
    }

    /// The tag of piece `value` ("1", "2", …, or "N/N" on the last).
    static func part(_ value: String) -> LogTag {
        LogTag("sluice_part", value)
    }

    static func feed(_ splitter: inout LineSplitter, _ text: String) -> [Emitted] {
        feed(&splitter, Array(text.utf8))
    }

    static func feed(_ splitter: inout LineSplitter, _ bytes: [UInt8]) -> [Emitted] {
        var out: [Emitted] = []
        bytes.withUnsafeBytes { buffer in
            splitter.feed(buffer) { line, tag in out.append(Emitted(bytes: line, tag: tag)) }
        }
        return out
    }

    static func finish(_ splitter: inout LineSplitter) -> [Emitted] {
        var out: [Emitted] = []
        splitter.finish { line, tag in out.append(Emitted(bytes: line, tag: tag)) }
        return out
    }

    @Test func linesSplitAtLineFeedWithCRLFHandled() {
        var splitter = LineSplitter()
        let out = Self.feed(&splitter, "one\ntwo\r\n\nfour\rstill four\n\r\nlast")
        let expected = [Emitted("one"), Emitted("two"), Emitted(""), Emitted("four\rstill four"), Emitted("")]
        #expect(out == expected)
        // "last" has no LF yet.
        let end = Self.finish(&splitter)
        #expect(end == [Emitted("last")])
    }

    @Test func lineAcrossSeveralFeeds() {
        var splitter = LineSplitter()
        var out: [Emitted] = []
        for chunk in ["hel", "", "lo wor", "ld\r"] { out += Self.feed(&splitter, chunk) }
        #expect(out.isEmpty)
        // The CR and the LF came in separate chunks: the CR is still dropped.
        let first = Self.feed(&splitter, "\nsecond\r")
        #expect(first == [Emitted("hello world")])
        let second = Self.feed(&splitter, "\n")
        #expect(second == [Emitted("second")])
        // A CR alone in its own chunk before the LF.
        let text = Self.feed(&splitter, "third")
        let carriageReturn = Self.feed(&splitter, "\r")
        #expect(text.isEmpty)
        #expect(carriageReturn.isEmpty)
        let third = Self.feed(&splitter, "\n")
        #expect(third == [Emitted("third")])
        let end = Self.finish(&splitter)
        #expect(end.isEmpty)
    }

    @Test func finishGivesTheLastLineWithoutLF() {
        var splitter = LineSplitter()
        let first = Self.feed(&splitter, "whole\npartial line")
        #expect(first == [Emitted("whole")])
        let end = Self.finish(&splitter)
        #expect(end == [Emitted("partial line")])
        // Nothing is left after that.
        let again = Self.finish(&splitter)
        #expect(again.isEmpty)

        var ended = LineSplitter()
        let done = Self.feed(&ended, "done\n")
        #expect(done == [Emitted("done")])
        let nothing = Self.finish(&ended)
        #expect(nothing.isEmpty)
    }

    @Test func longLineIsCutIntoTaggedPieces() {
        var splitter = LineSplitter(maxLineBytes: 8)
        let out = Self.feed(&splitter, "abcdefghijklmnopqrst\nshort\n")
        let expected = [
            Emitted("abcdefgh", Self.part("1")),
            Emitted("ijklmnop", Self.part("2")),
            Emitted("qrst", Self.part("3/3")),
            Emitted("short"),
        ]
        #expect(out == expected)
        #expect(LogTag.part(2, last: false) == Self.part("2"))
        #expect(LogTag.part(3, last: true) == Self.part("3/3"))
    }

    @Test func lineOfExactlyTheLimitIsWhole() {
        var splitter = LineSplitter(maxLineBytes: 8)
        let exact = Self.feed(&splitter, "abcdefgh\n")
        #expect(exact == [Emitted("abcdefgh")])
        let double = Self.feed(&splitter, "abcdefghijklmnop\r\n")
        #expect(double == [Emitted("abcdefgh", Self.part("1")), Emitted("ijklmnop", Self.part("2/2"))])
    }

    @Test func piecesOfAnUnfinishedLineGoOutBeforeItsEnd() {
        var splitter = LineSplitter(maxLineBytes: 8)
        let first = Self.feed(&splitter, "abcdefghij")
        #expect(first == [Emitted("abcdefgh", Self.part("1"))])
        let second = Self.feed(&splitter, "klmnopqr")
        #expect(second == [Emitted("ijklmnop", Self.part("2"))])
        let third = Self.feed(&splitter, "s\nnext\n")
        #expect(third == [Emitted("qrs", Self.part("3/3")), Emitted("next")])

        // Ended by finish instead of a LF.
        let fourth = Self.feed(&splitter, "0123456789")
        #expect(fourth == [Emitted("01234567", Self.part("1"))])
        let end = Self.finish(&splitter)
        #expect(end == [Emitted("89", Self.part("2/2"))])

        // A piece that used up the whole line: the LF ends it with an empty last piece.
        let whole = Self.feed(&splitter, "ABCDEFGH")
        #expect(whole == [Emitted("ABCDEFGH", Self.part("1"))])
        let lineEnd = Self.feed(&splitter, "\n")
        #expect(lineEnd == [Emitted("", Self.part("2/2"))])
    }

    @Test func splitOneMessage() {
        func split(_ text: String, max limit: Int) -> [Emitted] {
            var out: [Emitted] = []
            Array(text.utf8).withUnsafeBytes { bytes in
                LineSplitter.split(bytes, maxLineBytes: limit) { piece, tag in
                    out.append(Emitted(bytes: piece, tag: tag))
                }
            }
            return out
        }
        // Line ends are not special here: the message is taken as it is.
        #expect(split("short\r\n", max: 8) == [Emitted("short\r\n")])
        #expect(split("", max: 8) == [Emitted("")])
        #expect(split("abcd", max: 4) == [Emitted("abcd")])
        let three = split("abcdefghij", max: 4)
        let expectedThree = [
            Emitted("abcd", Self.part("1")), Emitted("efgh", Self.part("2")), Emitted("ij", Self.part("3/3")),
        ]
        #expect(three == expectedThree)
        let two = split("abcdefghij", max: 5)
        #expect(two == [Emitted("abcde", Self.part("1")), Emitted("fghij", Self.part("2/2"))])
    }

    @Test(arguments: [1 as UInt64, 2, 3, 4, 5, 6, 7, 8])
    func randomChunkingReproducesTheLines(seed: UInt64) {
        var generator = SeededGenerator(seed: seed)
        let maxLineBytes = 8
        // Random lines, some many times the limit; bytes other than CR and LF.
        var lines: [[UInt8]] = []
        var stream: [UInt8] = []
        for _ in 0..<Int.random(in: 1...40, using: &generator) {
            let crlf = Bool.random(using: &generator)
            // A CRLF line is kept short of the limit so that its CR never ends a piece.
            let length = Int.random(in: 0...(crlf ? maxLineBytes - 2 : 4 * maxLineBytes), using: &generator)
            var line: [UInt8] = []
            for _ in 0..<length {
                var byte = UInt8.random(in: 0...255, using: &generator)
                if byte == 0x0A || byte == 0x0D { byte = UInt8(ascii: "x") }
                line.append(byte)
            }
            lines.append(line)
            stream += line
            stream += crlf ? [0x0D, 0x0A] : [0x0A]
        }
        // Sometimes the last line has no LF: finish gives it.
        if Bool.random(using: &generator) {
            let line = (0..<Int.random(in: 1...20, using: &generator)).map { UInt8(65 + $0 % 26) }
            lines.append(line)
            stream += line
        }

        var splitter = LineSplitter(maxLineBytes: maxLineBytes)
        var emitted: [Emitted] = []
        var at = 0
        while at < stream.count {
            let end = min(stream.count, at + Int.random(in: 0...12, using: &generator))
            emitted += Self.feed(&splitter, Array(stream[at..<end]))
            at = end
        }
        emitted += Self.finish(&splitter)

        // Put the pieces back together, checking their tags as we go.
        var rebuilt: [[UInt8]] = []
        var partial: [UInt8]?
        var nextPart = 1
        for item in emitted {
            // Whole lines and pieces alike are never over the limit.
            #expect(item.bytes.count <= maxLineBytes, "seed \(seed): \(item)")
            guard let tag = item.tag else {
                #expect(partial == nil, "seed \(seed): a whole line inside a split one")
                rebuilt.append(item.bytes)
                continue
            }
            #expect(tag.key == "sluice_part", "seed \(seed)")
            if tag.value == "\(nextPart)/\(nextPart)" {
                rebuilt.append((partial ?? []) + item.bytes)
                partial = nil
                nextPart = 1
            } else {
                #expect(tag.value == "\(nextPart)", "seed \(seed): \(item)")
                // Every piece but the last is full.
                #expect(item.bytes.count == maxLineBytes, "seed \(seed): \(item)")
                partial = (partial ?? []) + item.bytes
                nextPart += 1
            }
        }
        #expect(partial == nil, "seed \(seed): a split line never ended")
        #expect(rebuilt == lines, "seed \(seed)")
    }
}
