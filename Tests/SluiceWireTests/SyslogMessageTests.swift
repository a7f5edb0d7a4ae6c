import SluiceSyslog
import SluiceWire
import Testing

/// Parsing helpers for the syslog tests: text in, results out.
private enum Syslog {
    static func parse(_ text: String) -> SyslogMessage? {
        parse(Array(text.utf8))
    }

    static func parse(_ bytes: [UInt8]) -> SyslogMessage? {
        bytes.withUnsafeBytes { SyslogMessage.parse($0) }
    }

    /// The MSG part of `source` as `message` delimits it.
    static func text(_ message: SyslogMessage, of source: String) -> String {
        let bytes = Array(source.utf8)
        guard message.message.lowerBound >= 0, message.message.upperBound <= bytes.count else {
            return "<range \(message.message) outside \(bytes.count) bytes>"
        }
        return String(decoding: bytes[message.message], as: UTF8.self)
    }

    static func nanoseconds(_ text: String) -> Int64? {
        Array(text.utf8).withUnsafeBytes { RFC3339.nanoseconds($0) }
    }

    /// Every field present, the example of RFC 5424 §6.5 with a fraction and an offset.
    static let full =
        #"<165>1 2026-11-24T10:00:00.123456+02:00 host.example.com myapp 1234 ID47 "#
        + #"[exampleSDID@32473 iut="3" eventSource="Application"] An application event"#

    /// 2026-11-24T08:00:00Z in seconds since the epoch.
    static let november24At8UTC: Int64 = 1_795_507_200
}

@Suite struct SyslogMessage5424Tests {
    @Test func herokuLinesWithoutStructuredDataParse() throws {
        let source = "<40>1 2012-11-30T06:45:29+00:00 host app web.3 - State changed from starting to up"
        let message = try #require(Syslog.parse(source))
        #expect(message.format == .rfc5424)
        #expect(message.appName == "app")
        #expect(message.procID == "web.3")
        #expect(message.msgID == nil)
        #expect(message.structuredData.isEmpty)
        #expect(message.timestamp == 1_354_257_929_000_000_000)
        #expect(Syslog.text(message, of: source) == "State changed from starting to up")
    }

    @Test func fullMessageHasEveryField() throws {
        let message = try #require(Syslog.parse(Syslog.full))
        #expect(message.format == .rfc5424)
        // PRI 165 = facility 20 (local4) * 8 + severity 5 (notice).
        #expect(message.facility == 20)
        #expect(message.severity == 5)
        #expect(!message.isError)
        // 10:00 at +02:00 is 08:00 UTC.
        #expect(message.timestamp == Syslog.november24At8UTC * 1_000_000_000 + 123_456_000)
        #expect(message.hostname == "host.example.com")
        #expect(message.appName == "myapp")
        #expect(message.procID == "1234")
        #expect(message.msgID == "ID47")
        let expected: [SyslogMessage.Parameter] = [
            .init(id: "exampleSDID@32473", name: "iut", value: "3"),
            .init(id: "exampleSDID@32473", name: "eventSource", value: "Application"),
        ]
        #expect(message.structuredData == expected)
        let count = Syslog.full.utf8.count
        let range = (count - "An application event".utf8.count)..<count
        #expect(message.message == range)
        #expect(Syslog.text(message, of: Syslog.full) == "An application event")
        #expect(message.sourceTypeAndInstance?.sourceType == nil)
    }

    @Test func nilValuesGiveNil() throws {
        let source = "<14>1 - - - - - -"
        let message = try #require(Syslog.parse(source))
        #expect(message.format == .rfc5424)
        #expect(message.facility == 1)
        #expect(message.severity == 6)
        #expect(message.timestamp == nil)
        #expect(message.hostname == nil)
        #expect(message.appName == nil)
        #expect(message.procID == nil)
        #expect(message.msgID == nil)
        #expect(message.structuredData.isEmpty)
        #expect(message.message.isEmpty)
        #expect(message.message.upperBound <= source.utf8.count)

        let withText = "<14>1 - - - - - - text after nils"
        let second = try #require(Syslog.parse(withText))
        #expect(second.format == .rfc5424)
        #expect(second.hostname == nil)
        #expect(Syslog.text(second, of: withText) == "text after nils")
    }

    @Test func structuredDataWithSeveralElementsAndEscapes() throws {
        let source =
            #"<13>1 2026-11-24T10:00:00Z host app - - "#
            + #"[quote@1 said="say \"hi\"" path="C:\\dir" bracket="x\]y" other="a\nb" spaced="two words"]"#
            + #"[empty@2][next@3 k="v"] msg"#
        let message = try #require(Syslog.parse(source))
        #expect(message.format == .rfc5424)
        let expected: [SyslogMessage.Parameter] = [
            .init(id: "quote@1", name: "said", value: #"say "hi""#),
            .init(id: "quote@1", name: "path", value: #"C:\dir"#),
            .init(id: "quote@1", name: "bracket", value: "x]y"),
            // Only `\"`, `\\` and `\]` are escapes: any other backslash stays.
            .init(id: "quote@1", name: "other", value: #"a\nb"#),
            .init(id: "quote@1", name: "spaced", value: "two words"),
            .init(id: "next@3", name: "k", value: "v"),
        ]
        #expect(message.structuredData == expected)
        #expect(Syslog.text(message, of: source) == "msg")
    }

    @Test func byteOrderMarkIsLeftOutOfTheMessage() throws {
        let source = "<14>1 - host app - - - \u{FEFF}héllo wörld"
        let message = try #require(Syslog.parse(source))
        #expect(message.format == .rfc5424)
        let bomAt = Array(source.utf8).firstIndex(of: 0xEF)
        #expect(bomAt != nil)
        #expect(message.message.lowerBound == (bomAt ?? -1) + 3)
        #expect(message.message.upperBound == source.utf8.count)
        #expect(Syslog.text(message, of: source) == "héllo wörld")
    }

    @Test(arguments: ["\n", "\r\n", "\n\n", "\r", "\r\n\r\n"])
    func trailingLineEndsAreTrimmed(ending: String) throws {
        let source = "<14>1 - host app - - - hello\r world" + ending
        let message = try #require(Syslog.parse(source))
        // A CR inside the message stays; only the trailing ones go.
        #expect(Syslog.text(message, of: source) == "hello\r world")
        #expect(message.message.upperBound == source.utf8.count - ending.utf8.count)
    }

    @Test func emptyMessage() throws {
        // With the space after SD and nothing after it.
        let source = "<14>1 2026-11-24T10:00:00Z host app 42 - - "
        let message = try #require(Syslog.parse(source))
        #expect(message.format == .rfc5424)
        #expect(message.procID == "42")
        #expect(message.message.isEmpty)
        #expect(message.message.lowerBound == source.utf8.count)
        // A message of only line ends is empty too.
        let onlyNewline = "<14>1 2026-11-24T10:00:00Z host app 42 - - \r\n"
        let second = try #require(Syslog.parse(onlyNewline))
        #expect(second.format == .rfc5424)
        #expect(second.message.isEmpty)
    }

    @Test(arguments: 0...7)
    func severitiesZeroToThreeAreErrors(severity: Int) throws {
        // Facility 16 (local0).
        let message = try #require(Syslog.parse("<\(16 * 8 + severity)>1 - host app - - - text"))
        #expect(message.facility == 16)
        #expect(Int(message.severity) == severity)
        #expect(message.isError == (severity <= 3))
    }

    @Test func sourceTypeAndInstanceFromCloudFoundryProcIDs() throws {
        let app = try #require(Syslog.parse("<14>1 2026-11-24T10:00:00Z host guid [APP/PROC/WEB/0] - - hi"))
        #expect(app.procID == "[APP/PROC/WEB/0]")
        let appPair = try #require(app.sourceTypeAndInstance)
        #expect(appPair.sourceType == "APP/PROC/WEB")
        #expect(appPair.instance == "0")

        let router = try #require(Syslog.parse("<14>1 2026-11-24T10:00:00Z host guid [RTR] - - hi"))
        let routerPair = try #require(router.sourceTypeAndInstance)
        #expect(routerPair.sourceType == "RTR")
        #expect(routerPair.instance == "")

        let instance = try #require(Syslog.parse("<14>1 2026-11-24T10:00:00Z host guid [CELL/SSHD/12] - - hi"))
        let instancePair = try #require(instance.sourceTypeAndInstance)
        #expect(instancePair.sourceType == "CELL/SSHD")
        #expect(instancePair.instance == "12")

        let plain = try #require(Syslog.parse("<14>1 2026-11-24T10:00:00Z host app 4321 - - hi"))
        #expect(plain.procID == "4321")
        #expect(plain.sourceTypeAndInstance?.sourceType == nil)

        let none = try #require(Syslog.parse("<14>1 2026-11-24T10:00:00Z host app - - - hi"))
        #expect(none.sourceTypeAndInstance?.sourceType == nil)
    }

    /// What util-linux `logger --rfc5424 hello` sends.
    @Test func utilLinuxLogger() throws {
        let source =
            #"<13>1 2026-11-24T10:00:00.123456+00:00 myhost myapp - - [timeQuality tzKnown="1" isSynced="0"] hello"#
        let message = try #require(Syslog.parse(source))
        #expect(message.format == .rfc5424)
        #expect(message.facility == 1)
        #expect(message.severity == 5)
        #expect(message.timestamp == (Syslog.november24At8UTC + 7200) * 1_000_000_000 + 123_456_000)
        #expect(message.hostname == "myhost")
        #expect(message.appName == "myapp")
        #expect(message.procID == nil)
        #expect(message.msgID == nil)
        let expected: [SyslogMessage.Parameter] = [
            .init(id: "timeQuality", name: "tzKnown", value: "1"),
            .init(id: "timeQuality", name: "isSynced", value: "0"),
        ]
        #expect(message.structuredData == expected)
        #expect(Syslog.text(message, of: source) == "hello")
    }

    @Test func truncatedStructuredDataFallsBackWithoutCrashing() throws {
        let source = #"<13>1 2026-11-24T10:00:00Z host app - - [a b="c"#
        let message = try #require(Syslog.parse(source))
        // Not RFC 5424; as RFC 3164 all of it after the PRI is MSG.
        #expect(message.format == .rfc3164)
        #expect(message.severity == 5)
        #expect(message.appName == nil)
        #expect(message.timestamp == nil)
        #expect(message.structuredData.isEmpty)
        #expect(Syslog.text(message, of: source) == #"1 2026-11-24T10:00:00Z host app - - [a b="c"#)

        for broken in [#"[a b="c"#, "[a", "[a ", #"[a b"#, #"[a b="#, "[", #"[a b="c" "#, #"[a b="c"x"#, "[]"] {
            let text = "<13>1 2026-11-24T10:00:00Z host app - - " + broken
            let parsed = try #require(Syslog.parse(text), "\(text)")
            #expect(parsed.format == .rfc3164, "\(text)")
            #expect(parsed.message.upperBound <= text.utf8.count, "\(text)")
        }
    }

    @Test func badTimestampFallsBackWithoutCrashing() throws {
        let source = "<13>1 2026-13-01T00:00:00Z host app - - - msg"
        let message = try #require(Syslog.parse(source))
        #expect(message.format == .rfc3164)
        #expect(message.timestamp == nil)
        #expect(message.hostname == nil)
        #expect(Syslog.text(message, of: source) == "1 2026-13-01T00:00:00Z host app - - - msg")
    }

    @Test func everyPrefixOfAFullMessageParsesSafely() throws {
        let bytes = Array(Syslog.full.utf8)
        for length in 0...bytes.count {
            let prefix = Array(bytes[..<length])
            let message = Syslog.parse(prefix)
            // "<165>" is the shortest prefix with a whole PRI.
            #expect((message != nil) == (length >= 5), "prefix of \(length)")
            if let message {
                #expect(message.message.upperBound <= length, "prefix of \(length)")
                #expect(message.facility == 20 && message.severity == 5, "prefix of \(length)")
            }
        }
        // Cut right after the structured data, it is still RFC 5424 with no MSG.
        let sdEnd = try #require(bytes.lastIndex(of: UInt8(ascii: "]")))
        let cut = try #require(Syslog.parse(Array(bytes[...sdEnd])))
        #expect(cut.format == .rfc5424)
        #expect(cut.message.isEmpty)
        #expect(cut.structuredData.count == 2)
    }
}

@Suite struct SyslogMessage3164Tests {
    @Test func withoutHostnameTheTagIsStillTheApp() throws {
        let source = "<13>Nov 24 10:00:00 myapp[12]: hi there"
        let message = try #require(Syslog.parse(source))
        #expect(message.format == .rfc3164)
        #expect(message.hostname == nil)
        #expect(message.appName == "myapp")
        #expect(message.procID == "12")
        #expect(Syslog.text(message, of: source) == "hi there")
        let plain = "<13>Nov 24 10:00:00 myapp: no pid"
        let withoutPID = try #require(Syslog.parse(plain))
        #expect(withoutPID.appName == "myapp")
        #expect(Syslog.text(withoutPID, of: plain) == "no pid")
    }

    @Test func classicBSDMessage() throws {
        let source = "<34>Oct 11 22:14:15 mymachine su[123]: 'su root' failed for lonvick on /dev/pts/8"
        let message = try #require(Syslog.parse(source))
        #expect(message.format == .rfc3164)
        #expect(message.facility == 4)
        #expect(message.severity == 2)
        #expect(message.isError)
        #expect(message.timestamp == nil)
        #expect(message.hostname == "mymachine")
        #expect(message.appName == "su")
        #expect(message.procID == "123")
        #expect(message.msgID == nil)
        #expect(message.structuredData.isEmpty)
        #expect(Syslog.text(message, of: source) == "'su root' failed for lonvick on /dev/pts/8")
    }

    @Test func spacePaddedDay() throws {
        let source = "<13>Oct  1 09:05:07 host cron[42]: job ran\n"
        let message = try #require(Syslog.parse(source))
        #expect(message.format == .rfc3164)
        #expect(message.hostname == "host")
        #expect(message.appName == "cron")
        #expect(message.procID == "42")
        #expect(Syslog.text(message, of: source) == "job ran")
    }

    @Test func tagWithoutPID() throws {
        let source = "<13>Oct 11 22:14:15 box sshd: accepted"
        let message = try #require(Syslog.parse(source))
        #expect(message.hostname == "box")
        #expect(message.appName == "sshd")
        #expect(message.procID == nil)
        #expect(Syslog.text(message, of: source) == "accepted")
    }

    @Test func withoutTimestamp() throws {
        let source = "<13>myapp: hi"
        let message = try #require(Syslog.parse(source))
        #expect(message.format == .rfc3164)
        #expect(message.facility == 1)
        #expect(message.severity == 5)
        #expect(message.hostname == nil)
        #expect(message.appName == "myapp")
        #expect(message.procID == nil)
        #expect(Syslog.text(message, of: source) == "hi")
    }

    @Test func withoutTagTheWholeRestIsTheMessage() throws {
        let bare = "<13>just some words, no tag"
        let message = try #require(Syslog.parse(bare))
        #expect(message.format == .rfc3164)
        #expect(message.appName == nil)
        #expect(message.procID == nil)
        #expect(message.hostname == nil)
        #expect(Syslog.text(message, of: bare) == "just some words, no tag")

        let stamped = "<13>Oct 11 22:14:15 mymachine hello world"
        let second = try #require(Syslog.parse(stamped))
        #expect(second.hostname == "mymachine")
        #expect(second.appName == nil)
        #expect(Syslog.text(second, of: stamped) == "hello world")

        let empty = try #require(Syslog.parse("<13>"))
        #expect(empty.format == .rfc3164)
        #expect(empty.appName == nil)
        #expect(empty.message.isEmpty)
    }

    @Test(arguments: [
        "", "hello", "<>", "<>hello", "<13", "<13x>hi", "<-1>hi", "<192>1 - - - - - -", "<999>hi", "<1000>hi",
        " <13>hi",
    ])
    func notSyslogGivesNil(text: String) {
        #expect(Syslog.parse(text) == nil)
    }

    @Test func highestPriority() throws {
        let message = try #require(Syslog.parse("<191>x"))
        #expect(message.facility == 23)
        #expect(message.severity == 7)
        let lowest = try #require(Syslog.parse("<0>x"))
        #expect(lowest.facility == 0)
        #expect(lowest.severity == 0)
        #expect(lowest.isError)
    }

    @Test func randomBytesNeverCrashAndStayInBounds() {
        var generator = SeededGenerator(seed: 5424)
        let specials: [UInt8] = [0x0A, 0x0D, 0xEF, 0xBB, 0xBF, 0x00, 0x7F, 0xFF]
        let alphabet = Array(#"<>0123456789 -[]"=\:.TZ+tzOct@/"#.utf8) + specials
        let template = Array(Syslog.full.utf8)
        var parsed = 0
        for round in 0..<4000 {
            var bytes: [UInt8] = []
            var priority: Int?
            switch round % 3 {
            case 0:
                // A PRI, valid or not, then noise.
                let value = Int.random(in: 0...255, using: &generator)
                priority = value
                bytes = Array("<\(value)>".utf8)
            case 1:
                // A real message cut short and with a few bytes changed.
                bytes = Array(template[..<Int.random(in: 0...template.count, using: &generator)])
                for _ in 0..<Int.random(in: 0...3, using: &generator) where !bytes.isEmpty {
                    let at = Int.random(in: 0..<bytes.count, using: &generator)
                    bytes[at] = alphabet.randomElement(using: &generator)!
                }
            default:
                break
            }
            for _ in 0..<Int.random(in: 0...60, using: &generator) {
                let byte =
                    Bool.random(using: &generator)
                    ? alphabet.randomElement(using: &generator)! : UInt8.random(in: 0...255, using: &generator)
                bytes.append(byte)
            }

            let message = Syslog.parse(bytes)
            if let priority {
                #expect((message != nil) == (priority <= 191), "\(bytes)")
            }
            guard let message else { continue }
            parsed += 1
            #expect(bytes.first == UInt8(ascii: "<"), "\(bytes)")
            #expect(message.message.lowerBound >= 0, "\(bytes)")
            #expect(message.message.upperBound <= bytes.count, "\(bytes)")
            let value = Int(message.facility) * 8 + Int(message.severity)
            #expect(message.severity <= 7, "\(bytes)")
            #expect(value <= 191, "\(bytes)")
            if let priority {
                #expect(value == priority, "\(bytes)")
            }
            if let last = message.message.last, message.message.upperBound <= bytes.count {
                #expect(bytes[last] != 0x0A && bytes[last] != 0x0D, "\(bytes)")
            }
        }
        // The generator does reach the parser's insides.
        #expect(parsed > 1000)
    }
}

@Suite struct RFC3339Tests {
    static let second: Int64 = 1_000_000_000

    @Test func utcAndOffsets() {
        #expect(Syslog.nanoseconds("1970-01-01T00:00:00Z") == 0)
        #expect(Syslog.nanoseconds("2026-11-24T08:00:00Z") == Syslog.november24At8UTC * Self.second)
        #expect(Syslog.nanoseconds("2026-11-24t08:00:00z") == Syslog.november24At8UTC * Self.second)
        #expect(Syslog.nanoseconds("2026-11-24T10:00:00+02:00") == Syslog.november24At8UTC * Self.second)
        #expect(Syslog.nanoseconds("2026-11-24T08:00:00+00:00") == Syslog.november24At8UTC * Self.second)
        #expect(Syslog.nanoseconds("2026-11-24T08:00:00-00:00") == Syslog.november24At8UTC * Self.second)
        // 15:30 UTC.
        #expect(Syslog.nanoseconds("2026-11-24T10:00:00-05:30") == 1_795_534_200 * Self.second)
        // Across midnight: 23:30 at -08:30 is 08:00 the next day.
        #expect(Syslog.nanoseconds("2026-11-23T23:30:00-08:30") == Syslog.november24At8UTC * Self.second)
    }

    @Test(arguments: 1...9)
    func fractionDigits(digits: Int) {
        let fraction = String("123456789".prefix(digits))
        var expected = Int64(fraction)!
        for _ in digits..<9 { expected *= 10 }
        #expect(Syslog.nanoseconds("1970-01-01T00:00:00.\(fraction)Z") == expected)
        #expect(
            Syslog.nanoseconds("2026-11-24T10:00:00.\(fraction)+02:00")
                == Syslog.november24At8UTC * Self.second + expected)
    }

    @Test func moreThanNineFractionDigitsAreTruncated() {
        #expect(Syslog.nanoseconds("1970-01-01T00:00:01.1234567891234Z") == Self.second + 123_456_789)
        #expect(Syslog.nanoseconds("1970-01-01T00:00:00.9999999999Z") == 999_999_999)
    }

    @Test func beforeTheEpoch() {
        #expect(Syslog.nanoseconds("1969-12-31T23:59:59Z") == -Self.second)
        #expect(Syslog.nanoseconds("1969-12-31T23:59:59.5Z") == -Self.second / 2)
        #expect(Syslog.nanoseconds("1969-07-20T20:17:40Z") == -14_182_940 * Self.second)
        #expect(Syslog.nanoseconds("1900-01-01T00:00:00Z") == -2_208_988_800 * Self.second)
    }

    @Test func leapYears() throws {
        #expect(Syslog.nanoseconds("2024-02-29T00:00:00Z") == 1_709_164_800 * Self.second)
        #expect(Syslog.nanoseconds("2000-02-29T12:00:00Z") == 951_825_600 * Self.second)
        // Feb 29 is a day of its own: Mar 1 is two days after Feb 28.
        let february28 = try #require(Syslog.nanoseconds("2024-02-28T00:00:00Z"))
        let march1 = try #require(Syslog.nanoseconds("2024-03-01T00:00:00Z"))
        #expect(march1 - february28 == 2 * 86_400 * Self.second)
        // 2100 is not a leap year: Mar 1 is one day after Feb 28.
        let february28Of2100 = try #require(Syslog.nanoseconds("2100-02-28T00:00:00Z"))
        let march1Of2100 = try #require(Syslog.nanoseconds("2100-03-01T00:00:00Z"))
        #expect(march1Of2100 - february28Of2100 == 86_400 * Self.second)
    }

    @Test func leapSecondCountsAsTheNextSecond() {
        #expect(Syslog.nanoseconds("2016-12-31T23:59:60Z") == 1_483_228_800 * Self.second)
    }

    @Test(arguments: [
        "", "2026-11-24", "2026-11-24T10:00:00", "2026-13-01T00:00:00Z", "2026-00-10T00:00:00Z",
        "2026-11-00T00:00:00Z", "2026-11-32T00:00:00Z", "2026-11-24T24:00:00Z", "2026-11-24T10:60:00Z",
        "2026-11-24T10:00:61Z", "2026-11-24T10:00:00.Z", "2026-11-24T10:00:00+0200", "2026-11-24T10:00:00+02",
        "2026-11-24T10:00:00+24:00", "2026-11-24T10:00:00+02:60", "2026-11-24T10:00:00Zjunk",
        "2026-11-24T10:00:00+02:00 ", "2026-11-24 10:00:00Z", "26-11-24T10:00:00Z", "2026/11/24T10:00:00Z",
        "2026-1-24T10:00:00Z", "2026-11-24T1:00:00Z", "-", "x026-11-24T10:00:00Z",
    ])
    func invalidStringsGiveNil(text: String) {
        #expect(Syslog.nanoseconds(text) == nil)
    }
}

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
