#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The one clock of every part of Sluice: wall time in nanoseconds since
/// the epoch (envelope timestamps, notice times, drain lines), and its UTC
/// form as syslog and the API write it.
public enum WallClock {
    /// Nanoseconds since the epoch, now.
    @inlinable
    public static func nowNanos() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
    }

    /// `2006-01-02T15:04:05.000000Z`: UTC with microseconds, as in syslog.
    public static func utcTime(nanoseconds: Int64) -> String {
        let (seconds, fraction) = splitSeconds(nanoseconds)
        let micros = Int(fraction / 1000)
        var time = time_t(seconds)
        var parts = tm()
        gmtime_r(&time, &parts)
        return "\(pad(Int(parts.tm_year) + 1900, 4))-\(pad(Int(parts.tm_mon) + 1))-\(pad(Int(parts.tm_mday)))"
            + "T\(pad(Int(parts.tm_hour))):\(pad(Int(parts.tm_min))):\(pad(Int(parts.tm_sec))).\(pad(micros, 6))Z"
    }

    /// Whole seconds (rounded down) and the nanoseconds past them, without
    /// overflow at the ends of Int64.
    public static func splitSeconds(_ nanoseconds: Int64) -> (seconds: Int64, fraction: Int64) {
        var (seconds, fraction) = nanoseconds.quotientAndRemainder(dividingBy: 1_000_000_000)
        if fraction < 0 {
            seconds -= 1
            fraction += 1_000_000_000
        }
        return (seconds, fraction)
    }

    /// `value` in decimal, zero-padded to `width` digits.
    public static func pad(_ value: Int, _ width: Int = 2) -> String {
        let digits = String(value)
        return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
    }
}
