import SluiceSyslog
import SluiceWire
import Testing

/// Parsing helpers for the syslog tests: text in, results out.
enum Syslog {
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
