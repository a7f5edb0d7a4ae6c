import SluiceSyslog
import SluiceWire
import Testing

@Suite struct OctetCountingTests {
    static func frames(_ text: String, maxMessageBytes: Int = 1024) throws -> [String] {
        let bytes = Array(text.utf8)
        let result: Result<[Range<Int>], OctetCounting.Malformed> = bytes.withUnsafeBytes { buffer in
            do throws(OctetCounting.Malformed) {
                return .success(try OctetCounting.frames(in: buffer, maxMessageBytes: maxMessageBytes))
            } catch {
                return .failure(error)
            }
        }
        return try result.get().map { String(decoding: bytes[$0], as: UTF8.self) }
    }

    /// `LEN SP MSG`.
    static func frame(_ message: String) -> String {
        "\(message.utf8.count) \(message)"
    }

    @Test func severalFrames() throws {
        let messages = ["<13>1 - host app - - - first", "second has\na newline", "<14>third", "é"]
        let body = messages.map(Self.frame).joined()
        #expect(try Self.frames(body) == messages)
        #expect(try Self.frames("5 hello6 world!") == ["hello", "world!"])
    }

    @Test func emptyBodyHasNoFrames() throws {
        #expect(try Self.frames("") == [])
    }

    @Test func zeroLengthFrame() throws {
        #expect(try Self.frames("0 ") == [""])
        #expect(try Self.frames("0 5 hello0 ") == ["", "hello", ""])
    }

    @Test func exactlyTheLimitIsAccepted() throws {
        #expect(try Self.frames("5 hello", maxMessageBytes: 5) == ["hello"])
    }

    @Test(arguments: [
        // (body, maxMessageBytes, offset of the bad frame)
        ("5 hell", 1024, 0),
        ("5 hello3 ab", 1024, 7),
        ("5hello", 1024, 0),
        ("5 hello5hello", 1024, 7),
        ("x hello", 1024, 0),
        ("-1 a", 1024, 0),
        (" 5 hello", 1024, 0),
        ("5 hello\n", 1024, 7),
        ("5", 1024, 0),
        ("12345678901 x", Int.max, 0),
        ("6 hello!", 5, 0),
        ("5 hello2000 x", 100, 7),
    ])
    func malformedBodiesThrow(body: String, maxMessageBytes: Int, offset: Int) {
        let error = #expect(throws: OctetCounting.Malformed.self) {
            try Self.frames(body, maxMessageBytes: maxMessageBytes)
        }
        #expect(error?.offset == offset)
    }

    @Test func overTheLimitSaysSo() {
        let error = #expect(throws: OctetCounting.Malformed.self) {
            try Self.frames("2000 x", maxMessageBytes: 100)
        }
        #expect(error?.reason.contains("over the limit") == true)
        #expect(error?.description.hasPrefix("octet-counted frame at byte 0") == true)
    }
}
