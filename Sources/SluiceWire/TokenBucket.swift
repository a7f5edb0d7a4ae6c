/// A log rate limit's bucket, as Diego keeps one: bytes per second, rate
/// and burst both the limit. A line that does not fit is dropped, and so is
/// everything else for the next second; the first drop of such a second is
/// the one to tell. A line larger than the limit never passes; a limit of 0
/// lets nothing through. Plain value: the caller passes the time.
public struct TokenBucket: Sendable {
    public enum Verdict: Equatable, Sendable {
        case pass
        case drop
        /// Drop, and tell (the first drop after lines passed).
        case dropAndTell
    }

    private var tokens: Double
    private var updated: Int64
    /// Everything is dropped until then.
    private var blockedUntil: Int64 = 0

    /// A full bucket at `now`.
    public init(bytesPerSecond: Int, now: Int64) {
        tokens = Double(bytesPerSecond)
        updated = now
    }

    /// Whether `bytes` more at `now` (nanoseconds) fit a limit of `bytesPerSecond`.
    public mutating func admit(bytes: Int, bytesPerSecond: Int, now: Int64) -> Verdict {
        let limit = Double(bytesPerSecond)
        if now > updated {
            tokens = min(limit, tokens + Double(now - updated) * limit / 1e9)
            updated = now
        }
        if now < blockedUntil { return .drop }
        if bytesPerSecond > 0 && Double(bytes) <= tokens {
            tokens -= Double(bytes)
            return .pass
        }
        blockedUntil = now + 1_000_000_000
        return .dropAndTell
    }

    /// Whether the bucket is full again and blocking nothing at `now`: one
    /// that is can be forgotten, a new one is the same.
    public func isIdle(bytesPerSecond: Int, now: Int64) -> Bool {
        let limit = Double(bytesPerSecond)
        return now >= blockedUntil && tokens + Double(max(0, now - updated)) * limit / 1e9 >= limit
    }
}
