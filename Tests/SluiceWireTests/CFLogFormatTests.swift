#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import SluiceProto
import SluiceWire
import Testing

@testable import SluiceCLI

/// Runs `body` with the process's local time zone set to `zone`, then puts
/// the previous setting back. TZ is process-global: callers are serialized.
func inTimeZone<R>(_ zone: String, _ body: () throws -> R) rethrows -> R {
    let previous = getenv("TZ").map { String(cString: $0) }
    setenv("TZ", zone, 1)
    tzset()
    defer {
        if let previous { setenv("TZ", previous, 1) } else { unsetenv("TZ") }
        tzset()
    }
    return try body()
}

/// 2018-11-12T05:13:51.95Z (`date -u -d 2018-11-12T05:13:51Z +%s` is 1541999631).
let novemberTwelfth: Int64 = 1_541_999_631_950_000_000

@Suite(.serialized) struct CFLogFormatTests {
    static let plain = CFLogFormat(color: false)
    static let colored = CFLogFormat(color: true)
    static let red = "\u{1B}[31m"
    static let reset = "\u{1B}[0m"

    static func log(_ payload: String, _ type: Loggregator_V2_Log.TypeEnum = .out, at time: Int64 = novemberTwelfth)
        -> Loggregator_V2_Envelope
    {
        Fixture.log(timestamp: time, payload: Array(payload.utf8), type: type, instance: "0")
    }

    @Test func referenceExample() {
        inTimeZone("Asia/Tokyo") {
            let expected = "   2018-11-12T14:13:51.95+0900 [APP/PROC/WEB/0] OUT hello"
            #expect(Self.plain.lines(for: Self.log("hello")) == [expected])
            // OUT is never colored.
            #expect(Self.colored.lines(for: Self.log("hello")) == [expected])
            #expect(CFLogFormat.localTime(nanoseconds: novemberTwelfth) == "2018-11-12T14:13:51.95+0900")
            #expect(
                CFLogFormat.header(
                    timestamp: novemberTwelfth, sourceType: "APP/PROC/WEB", instanceID: "0", type: .out)
                    == "   2018-11-12T14:13:51.95+0900 [APP/PROC/WEB/0] OUT ")
        }
    }

    @Test func errLines() {
        inTimeZone("Asia/Tokyo") {
            let expected = "   2018-11-12T14:13:51.95+0900 [APP/PROC/WEB/0] ERR boom"
            #expect(Self.plain.lines(for: Self.log("boom", .err)) == [expected])
            #expect(Self.colored.lines(for: Self.log("boom", .err)) == [Self.red + expected + Self.reset])
        }
    }

    @Test func otherSourceTypes() {
        inTimeZone("Asia/Tokyo") {
            let envelope = Fixture.log(
                timestamp: novemberTwelfth, payload: Array("GET /".utf8), instance: "3", tags: ["source_type": "RTR"])
            #expect(Self.plain.lines(for: envelope) == ["   2018-11-12T14:13:51.95+0900 [RTR/3] OUT GET /"])
        }
    }

    @Test func severalLinesRepeatTheHeader() {
        inTimeZone("Asia/Tokyo") {
            let out = "   2018-11-12T14:13:51.95+0900 [APP/PROC/WEB/0] OUT "
            #expect(Self.plain.lines(for: Self.log("a\nb\n")) == [out + "a", out + "b"])
            #expect(Self.plain.lines(for: Self.log("a\n\nb")) == [out + "a", out, out + "b"])
            let err = "   2018-11-12T14:13:51.95+0900 [APP/PROC/WEB/0] ERR "
            #expect(
                Self.colored.lines(for: Self.log("x\ny", .err))
                    == [Self.red + err + "x" + Self.reset, Self.red + err + "y" + Self.reset])
        }
    }

    @Test func trailingNewlinesAreRemoved() {
        inTimeZone("Asia/Tokyo") {
            let out = "   2018-11-12T14:13:51.95+0900 [APP/PROC/WEB/0] OUT "
            #expect(Self.plain.lines(for: Self.log("hello\n")) == [out + "hello"])
            #expect(Self.plain.lines(for: Self.log("hello\r")) == [out + "hello"])
            #expect(Self.plain.lines(for: Self.log("hello\r\n")) == [out + "hello"])
        }
    }

    @Test func crlfLinesAreSplit() {
        inTimeZone("Asia/Tokyo") {
            let out = "   2018-11-12T14:13:51.95+0900 [APP/PROC/WEB/0] OUT "
            #expect(Self.plain.lines(for: Self.log("a\r\nb\r\n")) == [out + "a", out + "b"])
        }
    }

    @Test func nonLogEnvelopesPrintNothing() {
        inTimeZone("Asia/Tokyo") {
            for envelope in [
                Fixture.counter(), Fixture.gauge(), Fixture.timer(), Fixture.event(), Loggregator_V2_Envelope(),
            ] {
                #expect(Self.plain.lines(for: envelope).isEmpty)
                #expect(Self.colored.lines(for: envelope).isEmpty)
            }
        }
    }

    @Test func hundredthsAreTruncated() {
        inTimeZone("Asia/Tokyo") {
            let base: Int64 = 1_541_999_631_000_000_000
            #expect(CFLogFormat.localTime(nanoseconds: base + 959_000_000) == "2018-11-12T14:13:51.95+0900")
            #expect(CFLogFormat.localTime(nanoseconds: base + 999_999_999) == "2018-11-12T14:13:51.99+0900")
            #expect(CFLogFormat.localTime(nanoseconds: base + 9_999_999) == "2018-11-12T14:13:51.00+0900")
            #expect(CFLogFormat.localTime(nanoseconds: base + 10_000_000) == "2018-11-12T14:13:51.01+0900")
            #expect(CFLogFormat.localTime(nanoseconds: base) == "2018-11-12T14:13:51.00+0900")
            #expect(
                Self.plain.lines(for: Self.log("hello", at: base + 959_000_000))
                    == ["   2018-11-12T14:13:51.95+0900 [APP/PROC/WEB/0] OUT hello"])
        }
    }

    @Test func otherTimeZones() {
        #expect(inTimeZone("UTC") { CFLogFormat.localTime(nanoseconds: novemberTwelfth) } == "2018-11-12T05:13:51.95+0000")
        #expect(
            inTimeZone("America/St_Johns") { CFLogFormat.localTime(nanoseconds: novemberTwelfth) }
                == "2018-11-12T01:43:51.95-0330")
        #expect(
            inTimeZone("Asia/Kolkata") { CFLogFormat.localTime(nanoseconds: novemberTwelfth) }
                == "2018-11-12T10:43:51.95+0530")
        // Summer time: 2018-07-01T12:00:00Z in New York is 08:00 at -0400.
        #expect(
            inTimeZone("America/New_York") { CFLogFormat.localTime(nanoseconds: 1_530_446_400_000_000_000) }
                == "2018-07-01T08:00:00.00-0400")
    }

    @Test func timesBeforeTheEpoch() {
        inTimeZone("UTC") {
            #expect(CFLogFormat.localTime(nanoseconds: 0) == "1970-01-01T00:00:00.00+0000")
            #expect(CFLogFormat.localTime(nanoseconds: -1) == "1969-12-31T23:59:59.99+0000")
            #expect(CFLogFormat.localTime(nanoseconds: -10_000_001) == "1969-12-31T23:59:59.98+0000")
            #expect(CFLogFormat.localTime(nanoseconds: -1_000_000_000) == "1969-12-31T23:59:59.00+0000")
            #expect(CFLogFormat.localTime(nanoseconds: -1_500_000_000) == "1969-12-31T23:59:58.50+0000")
        }
    }

    @Test func utcTimeIgnoresTheLocalZone() {
        inTimeZone("Asia/Tokyo") {
            #expect(WallClock.utcTime(nanoseconds: novemberTwelfth + 123_456) == "2018-11-12T05:13:51.950123Z")
            #expect(WallClock.utcTime(nanoseconds: novemberTwelfth + 999) == "2018-11-12T05:13:51.950000Z")
            #expect(WallClock.utcTime(nanoseconds: 0) == "1970-01-01T00:00:00.000000Z")
            #expect(WallClock.utcTime(nanoseconds: -1) == "1969-12-31T23:59:59.999999Z")
            #expect(WallClock.utcTime(nanoseconds: -1_000_000_001) == "1969-12-31T23:59:58.999999Z")
        }
    }

    @Test func invalidUTF8PayloadStillPrints() {
        inTimeZone("Asia/Tokyo") {
            let envelope = Fixture.log(timestamp: novemberTwelfth, payload: [0x61, 0xFF, 0x00, 0x62], instance: "0")
            let lines = Self.plain.lines(for: envelope)
            #expect(lines.count == 1)
            #expect(lines.first?.hasPrefix("   2018-11-12T14:13:51.95+0900 [APP/PROC/WEB/0] OUT a") == true)
            #expect(lines.first?.hasSuffix("b") == true)
            #expect(lines.first?.contains("\u{FFFD}") == true)
        }
    }
}

/// Timestamps come from the network: no value may crash a `logs` reader.
@Suite struct CFLogFormatExtremeTimestampTests {
    @Test func farFutureTimestamp() {
        let lines = CFLogFormat(color: false).lines(for: Fixture.log(timestamp: Int64.max))
        #expect(lines.count == 1)
        #expect(lines.first?.contains("2262-04-") == true)
    }

    @Test func farPastTimestampDoesNotCrash() async {
        await #expect(processExitsWith: .success) {
            _ = CFLogFormat(color: false).lines(for: Fixture.log(timestamp: Int64.min))
        }
        await #expect(processExitsWith: .success) {
            _ = CFLogFormat.localTime(nanoseconds: Int64.min + 1)
        }
        // The ends of Int64 nanoseconds are 1677-09-21T00:12:43.145224192Z
        // and 2262-04-11T23:47:16.854775807Z.
        await #expect(processExitsWith: .success) {
            setenv("TZ", "UTC", 1)
            tzset()
            guard WallClock.utcTime(nanoseconds: Int64.min) == "1677-09-21T00:12:43.145224Z",
                WallClock.utcTime(nanoseconds: Int64.max) == "2262-04-11T23:47:16.854775Z",
                CFLogFormat.localTime(nanoseconds: Int64.min) == "1677-09-21T00:12:43.14+0000",
                CFLogFormat.localTime(nanoseconds: Int64.max) == "2262-04-11T23:47:16.85+0000"
            else { exit(1) }
        }
    }
}
