import SluiceSyslog
import SluiceWire
import Testing

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
