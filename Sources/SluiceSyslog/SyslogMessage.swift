/// One syslog message read from its bytes: RFC 5424 exactly, RFC 3164
/// best-effort. `parse` returns nil for bytes that are neither (no `<PRI>`);
/// the caller decides what becomes of them.
///
///     <PRI>VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP SD [SP MSG]   (RFC 5424)
///     <PRI>Mmm dd hh:mm:ss HOSTNAME TAG[PID]: MSG                                           (RFC 3164)
public struct SyslogMessage: Hashable, Sendable {
    public enum Format: Hashable, Sendable {
        case rfc5424
        case rfc3164
    }

    /// One parameter of a structured-data element: `[id name="value"]`.
    public struct Parameter: Hashable, Sendable {
        public var id: String
        public var name: String
        public var value: String

        public init(id: String, name: String, value: String) {
            self.id = id
            self.name = name
            self.value = value
        }
    }

    public var format: Format
    public var facility: UInt8
    public var severity: UInt8
    /// Nanoseconds since the epoch; nil when the message has none (NILVALUE,
    /// or RFC 3164, whose timestamps have no year or zone).
    public var timestamp: Int64?
    public var hostname: String?
    public var appName: String?
    public var procID: String?
    public var msgID: String?
    public var structuredData: [Parameter]
    /// The MSG part's byte range within the parsed bytes, a UTF-8 BOM and
    /// trailing line ends left out.
    public var message: Range<Int>

    /// Severity 0 (emergency) to 3 (error).
    public var isError: Bool { severity <= 3 }

    /// The facility's keyword (RFC 5424 §6.2.1, as syslog.conf names them):
    /// `kern`, `user`, `mail`, `daemon`, `auth`, … `local0`–`local7`.
    public var facilityName: String {
        Self.facilityNames.indices.contains(Int(facility)) ? Self.facilityNames[Int(facility)] : "\(facility)"
    }

    static let facilityNames = [
        "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp", "ntp",
        "audit", "alert", "clock", "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
    ]

    public static func parse(_ bytes: UnsafeRawBufferPointer) -> SyslogMessage? {
        var cursor = Cursor(bytes: bytes)
        guard let pri = cursor.priority() else { return nil }
        let facility = UInt8(pri / 8)
        let severity = UInt8(pri % 8)
        let afterPRI = cursor.index
        if let message = parse5424(&cursor, facility: facility, severity: severity) { return message }
        cursor.index = afterPRI
        return parse3164(&cursor, facility: facility, severity: severity)
    }

    private static func parse5424(_ cursor: inout Cursor, facility: UInt8, severity: UInt8) -> SyslogMessage? {
        guard let version = cursor.token(maxLength: 2), version.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
            version.first != 0x30, cursor.space(),
            let time = cursor.token(maxLength: 64), cursor.space(),
            let hostname = cursor.token(maxLength: 255), cursor.space(),
            let appName = cursor.token(maxLength: 48), cursor.space(),
            let procID = cursor.token(maxLength: 128), cursor.space(),
            let msgID = cursor.token(maxLength: 32), cursor.space()
        else { return nil }
        // Heroku's and log-shuttle's lines may leave STRUCTURED-DATA out
        // altogether (`… web.3 - State changed`): MSG then starts here.
        let hasStructuredData = !cursor.atEnd && (cursor.peek == UInt8(ascii: "-") || cursor.peek == UInt8(ascii: "["))
        guard let structuredData = hasStructuredData ? cursor.structuredData() : [] else { return nil }
        let timestamp: Int64?
        if time.count == 1 && time.first == UInt8(ascii: "-") {
            timestamp = nil
        } else {
            guard let parsed = RFC3339.nanoseconds(time) else { return nil }
            timestamp = parsed
        }
        if hasStructuredData && !cursor.atEnd {
            guard cursor.space() else { return nil }
        }
        return SyslogMessage(
            format: .rfc5424, facility: facility, severity: severity, timestamp: timestamp,
            hostname: nilValue(hostname), appName: nilValue(appName), procID: nilValue(procID),
            msgID: nilValue(msgID), structuredData: structuredData, message: cursor.rest())
    }

    /// `Mmm dd hh:mm:ss HOST TAG[PID]: MSG`, taking what is there: a message
    /// without the timestamp is all MSG; without a TAG it has no app.
    private static func parse3164(_ cursor: inout Cursor, facility: UInt8, severity: UInt8) -> SyslogMessage {
        var hostname: String?
        var appName: String?
        var procID: String?
        if cursor.bsdTimestamp() {
            let beforeHost = cursor.index
            // A HOSTNAME, unless what follows the timestamp is already the
            // TAG (`myapp[12]:` or `myapp:`): many senders leave it out.
            if let host = cursor.token(maxLength: 255), cursor.space(), host.last != UInt8(ascii: ":"),
                !host.contains(UInt8(ascii: "["))
            {
                hostname = String(decoding: host, as: UTF8.self)
            } else {
                cursor.index = beforeHost
            }
        }
        // TAG: up to 48 characters of [A-Za-z0-9._/-], then [PID] and ':'.
        let beforeTag = cursor.index
        var tagEnd = cursor.index
        while tagEnd < cursor.bytes.count, tagEnd - beforeTag < 48, Self.isTagByte(cursor.bytes[tagEnd]) { tagEnd += 1 }
        if tagEnd > beforeTag {
            var next = tagEnd
            var pid: String?
            if next < cursor.bytes.count, cursor.bytes[next] == UInt8(ascii: "[") {
                var close = next + 1
                while close < cursor.bytes.count, close - next < 130, cursor.bytes[close] != UInt8(ascii: "]") { close += 1 }
                if close < cursor.bytes.count, cursor.bytes[close] == UInt8(ascii: "]") {
                    pid = String(decoding: UnsafeRawBufferPointer(rebasing: cursor.bytes[(next + 1)..<close]), as: UTF8.self)
                    next = close + 1
                }
            }
            if next < cursor.bytes.count, cursor.bytes[next] == UInt8(ascii: ":") {
                appName = String(decoding: UnsafeRawBufferPointer(rebasing: cursor.bytes[beforeTag..<tagEnd]), as: UTF8.self)
                procID = pid
                cursor.index = next + 1
                _ = cursor.space()
            }
        }
        return SyslogMessage(
            format: .rfc3164, facility: facility, severity: severity, timestamp: nil, hostname: hostname,
            appName: appName, procID: procID, msgID: nil, structuredData: [], message: cursor.rest())
    }

    private static func isTagByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"),
            UInt8(ascii: "/"):
            return true
        default:
            return false
        }
    }

    private static func nilValue(_ token: UnsafeRawBufferPointer) -> String? {
        if token.count == 1 && token[0] == UInt8(ascii: "-") { return nil }
        return String(decoding: token, as: UTF8.self)
    }
}

extension SyslogMessage {
    /// PROCID `[APP/PROC/WEB/0]` (as Cloud Foundry's drains write it) read as
    /// source type `APP/PROC/WEB` and instance `0`; nil for any other PROCID.
    public var sourceTypeAndInstance: (sourceType: String, instance: String)? {
        guard let procID, procID.count >= 2, procID.hasPrefix("["), procID.hasSuffix("]") else { return nil }
        let inner = procID.dropFirst().dropLast()
        guard let slash = inner.lastIndex(of: "/") else { return (String(inner), "") }
        return (String(inner[..<slash]), String(inner[inner.index(after: slash)...]))
    }
}

/// A reading position in a message's bytes.
private struct Cursor {
    let bytes: UnsafeRawBufferPointer
    var index = 0

    var atEnd: Bool { index >= bytes.count }

    /// The byte at the index (not at the end).
    var peek: UInt8 { bytes[index] }

    /// `<PRI>`: one to three digits, at most 191.
    mutating func priority() -> Int? {
        guard bytes.count >= 3, bytes[0] == UInt8(ascii: "<") else { return nil }
        var value = 0
        var at = 1
        while at < bytes.count, at <= 4, bytes[at] >= 0x30, bytes[at] <= 0x39 {
            value = value * 10 + Int(bytes[at] - 0x30)
            at += 1
        }
        guard at > 1, at <= 4, at < bytes.count, bytes[at] == UInt8(ascii: ">"), value <= 191 else { return nil }
        index = at + 1
        return value
    }

    mutating func space() -> Bool {
        guard index < bytes.count, bytes[index] == 0x20 else { return false }
        index += 1
        return true
    }

    /// Printable ASCII up to the next space or the end; nil if empty or too long.
    mutating func token(maxLength: Int) -> UnsafeRawBufferPointer? {
        let start = index
        while index < bytes.count, bytes[index] > 0x20, bytes[index] < 0x7F {
            index += 1
            if index - start > maxLength { return nil }
        }
        guard index > start else { return nil }
        return UnsafeRawBufferPointer(rebasing: bytes[start..<index])
    }

    /// `-` or one or more `[ID name="value" …]`; nil if malformed.
    mutating func structuredData() -> [SyslogMessage.Parameter]? {
        guard index < bytes.count else { return nil }
        if bytes[index] == UInt8(ascii: "-") {
            index += 1
            return []
        }
        var parameters: [SyslogMessage.Parameter] = []
        var elements = 0
        while index < bytes.count, bytes[index] == UInt8(ascii: "[") {
            elements += 1
            index += 1
            guard let id = name(maxLength: 32) else { return nil }
            let idText = String(decoding: id, as: UTF8.self)
            while index < bytes.count, bytes[index] == 0x20 {
                index += 1
                guard let name = name(maxLength: 32), index + 1 < bytes.count, bytes[index] == UInt8(ascii: "="),
                    bytes[index + 1] == UInt8(ascii: "\"")
                else { return nil }
                index += 2
                guard let value = quotedValue() else { return nil }
                parameters.append(.init(id: idText, name: String(decoding: name, as: UTF8.self), value: value))
            }
            guard index < bytes.count, bytes[index] == UInt8(ascii: "]") else { return nil }
            index += 1
        }
        return elements > 0 ? parameters : nil
    }

    /// SD-NAME: printable ASCII except `=`, space, `]` and `"`.
    private mutating func name(maxLength: Int) -> UnsafeRawBufferPointer? {
        let start = index
        while index < bytes.count, bytes[index] > 0x20, bytes[index] < 0x7F,
            bytes[index] != UInt8(ascii: "="), bytes[index] != UInt8(ascii: "]"), bytes[index] != UInt8(ascii: "\"")
        {
            index += 1
            if index - start > maxLength { return nil }
        }
        return index > start ? UnsafeRawBufferPointer(rebasing: bytes[start..<index]) : nil
    }

    /// A PARAM-VALUE after its opening quote, with `\"`, `\\` and `\]`
    /// unescaped; the index ends past the closing quote.
    private mutating func quotedValue() -> String? {
        var value: [UInt8] = []
        while index < bytes.count {
            let byte = bytes[index]
            index += 1
            switch byte {
            case UInt8(ascii: "\""):
                return String(decoding: value, as: UTF8.self)
            case UInt8(ascii: "\\"):
                if index < bytes.count,
                    [UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "]")].contains(bytes[index])
                {
                    value.append(bytes[index])
                    index += 1
                } else {
                    value.append(byte)
                }
            default:
                value.append(byte)
            }
        }
        return nil
    }

    /// `Mmm dd hh:mm:ss ` (the day may be space-padded); the index moves
    /// past it only if it is there.
    mutating func bsdTimestamp() -> Bool {
        guard bytes.count - index >= 16 else { return false }
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        let month = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[index..<(index + 3)]), as: UTF8.self)
        guard months.contains(month) else { return false }
        func digit(_ at: Int) -> Bool { bytes[index + at] >= 0x30 && bytes[index + at] <= 0x39 }
        guard bytes[index + 3] == 0x20, bytes[index + 4] == 0x20 || digit(4), digit(5), bytes[index + 6] == 0x20,
            digit(7), digit(8), bytes[index + 9] == UInt8(ascii: ":"), digit(10), digit(11),
            bytes[index + 12] == UInt8(ascii: ":"), digit(13), digit(14), bytes[index + 15] == 0x20
        else { return false }
        index += 16
        return true
    }

    /// The rest as MSG: a UTF-8 BOM skipped, trailing CR and LF dropped.
    func rest() -> Range<Int> {
        var start = min(index, bytes.count)
        if bytes.count - start >= 3, bytes[start] == 0xEF, bytes[start + 1] == 0xBB, bytes[start + 2] == 0xBF {
            start += 3
        }
        var end = bytes.count
        while end > start, bytes[end - 1] == 0x0A || bytes[end - 1] == 0x0D { end -= 1 }
        return start..<end
    }
}

/// RFC 3339 timestamps as RFC 5424 writes them:
/// `2026-11-24T10:00:00.123456Z` or with a `±hh:mm` offset.
public enum RFC3339 {
    public static func nanoseconds(_ text: UnsafeRawBufferPointer) -> Int64? {
        var at = 0
        func number(_ width: Int) -> Int? {
            guard at + width <= text.count else { return nil }
            var value = 0
            for offset in 0..<width {
                let byte = text[at + offset]
                guard byte >= 0x30, byte <= 0x39 else { return nil }
                value = value * 10 + Int(byte - 0x30)
            }
            at += width
            return value
        }
        func expect(_ character: UInt8) -> Bool {
            guard at < text.count, text[at] == character else { return false }
            at += 1
            return true
        }
        guard let year = number(4), expect(UInt8(ascii: "-")), let month = number(2), (1...12).contains(month),
            expect(UInt8(ascii: "-")), let day = number(2), (1...31).contains(day),
            at < text.count, text[at] == UInt8(ascii: "T") || text[at] == UInt8(ascii: "t")
        else { return nil }
        at += 1
        guard let hour = number(2), hour < 24, expect(UInt8(ascii: ":")), let minute = number(2), minute < 60,
            expect(UInt8(ascii: ":")), let second = number(2), second < 61
        else { return nil }
        var fraction: Int64 = 0
        if expect(UInt8(ascii: ".")) {
            var digits = 0
            while at < text.count, text[at] >= 0x30, text[at] <= 0x39 {
                if digits < 9 { fraction = fraction * 10 + Int64(text[at] - 0x30) }
                digits += 1
                at += 1
            }
            guard digits > 0 else { return nil }
            if digits < 9 {
                for _ in digits..<9 { fraction *= 10 }
            }
        }
        var offsetSeconds = 0
        if expect(UInt8(ascii: "Z")) || expect(UInt8(ascii: "z")) {
        } else if at < text.count, text[at] == UInt8(ascii: "+") || text[at] == UInt8(ascii: "-") {
            let sign = text[at] == UInt8(ascii: "-") ? -1 : 1
            at += 1
            guard let hours = number(2), hours < 24, expect(UInt8(ascii: ":")), let minutes = number(2), minutes < 60
            else { return nil }
            offsetSeconds = sign * (hours * 3600 + minutes * 60)
        } else {
            return nil
        }
        guard at == text.count else { return nil }
        let days = daysFromCivil(year: year, month: month, day: day)
        let seconds = Int64(days) * 86_400 + Int64(hour * 3600 + minute * 60 + second - offsetSeconds)
        let (nanos, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        guard !overflow else { return nil }
        return nanos.addingReportingOverflow(fraction).overflow ? nil : nanos + fraction
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date.
    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }
}
