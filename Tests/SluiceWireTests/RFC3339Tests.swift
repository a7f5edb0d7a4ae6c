import SluiceSyslog
import SluiceWire
import Testing

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
