import SluiceSyslog
import SluiceWire

/// One log line as a drain receives it (REFERENCE §4, as Cloud Foundry's
/// drains write it): RFC 5424,
///
///     <14>1 2026-11-24T10:00:00.123456Z HOSTNAME APP-NAME [APP/PROC/WEB/0] - [tags@47450 k="v"] MSG\n
///
/// PRI 14 (user.info) for OUT and 11 (user.err) for ERR; the time in UTC
/// with microseconds; HOSTNAME the drain's `?hostname=` or the app id;
/// APP-NAME the app id; PROCID `[source_type/instance]`; MSGID `-`; the
/// tags as structured data; the message with NULs removed and a newline
/// appended. Fields are cut to RFC 5424's lengths, and characters a field
/// may not hold become `_`.
public struct DrainLine: Sendable {
    public var app: String
    public var hostname: String?
    public var sourceType: String
    public var instance: String
    public var isError: Bool
    public var timestamp: Int64
    public var tags: [(key: String, value: String)]

    /// The SD-ID tags are written under (Cloud Foundry's).
    public static let tagsID = "tags@47450"

    public init(
        app: String, hostname: String? = nil, sourceType: String, instance: String, isError: Bool, timestamp: Int64,
        tags: [(key: String, value: String)] = []
    ) {
        self.app = app
        self.hostname = hostname
        self.sourceType = sourceType
        self.instance = instance
        self.isError = isError
        self.timestamp = timestamp
        self.tags = tags
    }

    /// The line for `message`, ending in LF.
    public func bytes(message: some Collection<UInt8>) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(message.count + 128)
        out += Array((isError ? "<11>1 " : "<14>1 ").utf8)
        out += Array(WallClock.utcTime(nanoseconds: timestamp).utf8)
        out.append(0x20)
        SyslogFormat.appendToken(hostname ?? app, maxLength: 255, to: &out)
        out.append(0x20)
        SyslogFormat.appendToken(app, maxLength: 48, to: &out)
        out.append(0x20)
        let source = sourceType.isEmpty ? instance : instance.isEmpty ? sourceType : "\(sourceType)/\(instance)"
        SyslogFormat.appendToken("[\(source)]", maxLength: 128, to: &out)
        out += Array(" - ".utf8)
        let written = tags.filter { !$0.key.isEmpty }.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
        if written.isEmpty {
            out.append(UInt8(ascii: "-"))
        } else {
            out += Array("[\(Self.tagsID)".utf8)
            for tag in written {
                SyslogFormat.appendParam(name: tag.key.utf8, value: tag.value.utf8, to: &out)
            }
            out.append(UInt8(ascii: "]"))
        }
        out.append(0x20)
        for byte in message where byte != 0 { out.append(byte) }
        out.append(0x0A)
        return out
    }

    /// What ends a line cut to fit a datagram.
    public static let cutMarker: [UInt8] = Array(" [cut by sluice]\n".utf8)

    /// `line` as one datagram of at most `maxBytes`: unchanged if it fits,
    /// else cut at a UTF-8 character boundary and ended with `cutMarker`.
    public static func datagram(_ line: [UInt8], maxBytes: Int = 2048) -> ArraySlice<UInt8> {
        guard line.count > maxBytes else { return line[...] }
        var end = maxBytes - cutMarker.count
        while end > 0 && line[end] & 0xC0 == 0x80 { end -= 1 }
        return (Array(line[..<end]) + cutMarker)[...]
    }
}
