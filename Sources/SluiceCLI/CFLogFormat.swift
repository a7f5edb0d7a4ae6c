#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import FoundationEssentials
import SluiceProto
import SluiceWire

/// Prints envelopes as `cf logs` does:
///
///     "   2018-11-12T14:13:51.95+0900 [APP/PROC/WEB/0] OUT hello"
///
/// Local time with hundredths of a second and the UTC offset, the source type
/// and instance, OUT or ERR, then the line. A payload of several lines is
/// printed as several lines, each with the header. With `color`, ERR lines
/// are red.
public struct CFLogFormat: Sendable {
    public var color: Bool

    public init(color: Bool) {
        self.color = color
    }

    /// The printed lines of one envelope: empty for non-log envelopes.
    public func lines(for envelope: Loggregator_V2_Envelope) -> [String] {
        guard case .log(let log)? = envelope.message else { return [] }
        let header = Self.header(
            timestamp: envelope.timestamp,
            sourceType: envelope.tags["source_type"] ?? "",
            instanceID: envelope.instanceID,
            type: log.type)
        let red = color && log.type == .err
        return Self.splitLines(Array(log.payload)).map { line in
            let body = header + String(decoding: line, as: UTF8.self)
            return red ? "\u{1B}[31m" + body + "\u{1B}[0m" : body
        }
    }

    /// The lines of a payload: split at LF, a CR before each LF dropped,
    /// trailing line ends removed. An empty payload is one empty line.
    static func splitLines(_ bytes: [UInt8]) -> [ArraySlice<UInt8>] {
        var end = bytes.count
        while end > 0 && (bytes[end - 1] == 0x0A || bytes[end - 1] == 0x0D) { end -= 1 }
        return bytes[..<end].split(separator: 0x0A, omittingEmptySubsequences: false).map { line in
            line.last == 0x0D ? line.dropLast() : line
        }
    }

    /// Everything before the message: three spaces, time, source, type, space.
    public static func header(
        timestamp: Int64, sourceType: String, instanceID: String, type: Loggregator_V2_Log.TypeEnum
    ) -> String {
        let source: String
        switch (sourceType.isEmpty, instanceID.isEmpty) {
        case (false, false): source = "\(sourceType)/\(instanceID)"
        case (false, true): source = sourceType
        case (true, false): source = instanceID
        case (true, true): source = "-"
        }
        let kind = type == .err ? "ERR" : "OUT"
        return "   \(localTime(nanoseconds: timestamp)) [\(source)] \(kind) "
    }

    /// `2006-01-02T15:04:05.00-0700` in the machine's local time zone.
    public static func localTime(nanoseconds: Int64) -> String {
        let (seconds, fraction) = WallClock.splitSeconds(nanoseconds)
        let hundredths = Int(fraction / 10_000_000)
        var time = time_t(seconds)
        var parts = tm()
        localtime_r(&time, &parts)
        let offsetMinutes = Int(parts.tm_gmtoff) / 60
        let sign = offsetMinutes < 0 ? "-" : "+"
        let offset = abs(offsetMinutes)
        return "\(WallClock.pad(Int(parts.tm_year) + 1900, 4))-\(WallClock.pad(Int(parts.tm_mon) + 1))-\(WallClock.pad(Int(parts.tm_mday)))"
            + "T\(WallClock.pad(Int(parts.tm_hour))):\(WallClock.pad(Int(parts.tm_min))):\(WallClock.pad(Int(parts.tm_sec))).\(WallClock.pad(hundredths))"
            + "\(sign)\(WallClock.pad(offset / 60))\(WallClock.pad(offset % 60))"
    }
}
