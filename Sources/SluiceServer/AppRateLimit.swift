import SluiceWire

/// An app's log rate limit at the buffer server that owns it: the bytes of
/// all its Log envelopes together, from every source, per second (a token
/// bucket as Diego's, rate and burst both the limit; past it, everything
/// for the rest of a second is dropped). The drops are told in the app's
/// own stream at most once a second, with how many and the limit. Plain
/// value: the caller passes the time.
struct AppRateLimit {
    static let second: Int64 = 1_000_000_000

    let bytesPerSecond: Int
    private var bucket: TokenBucket
    /// Lines dropped since `droppedSince` that are not told yet.
    private(set) var dropped = 0
    private(set) var droppedSince: Int64 = 0

    init(bytesPerSecond: Int, now: Int64) {
        self.bytesPerSecond = bytesPerSecond
        bucket = TokenBucket(bytesPerSecond: bytesPerSecond, now: now)
    }

    /// Whether a Log envelope of `bytes` at `now` is kept; a dropped one
    /// is counted for the next notice.
    mutating func admit(bytes: Int, now: Int64) -> Bool {
        if bucket.admit(bytes: bytes, bytesPerSecond: bytesPerSecond, now: now) == .pass { return true }
        if dropped == 0 { droppedSince = now }
        dropped += 1
        return false
    }

    /// The notice to write now, if lines were dropped and the first of them
    /// a second ago or more; what it tells is then forgotten.
    mutating func noticeDue(now: Int64) -> String? {
        guard now - droppedSince >= Self.second else { return nil }
        return takeNotice()
    }

    /// The notice of what was dropped and not told yet, if anything was,
    /// whenever it was; what it tells is then forgotten.
    mutating func takeNotice() -> String? {
        guard dropped > 0 else { return nil }
        defer { dropped = 0 }
        return Self.noticeText(bytesPerSecond: bytesPerSecond, dropped: dropped, sinceNanos: droppedSince)
    }

    /// Cloud Foundry's words for an instance's limit, for the app's, with
    /// Logplex's count and time: `app exceeded log rate limit (N bytes/sec):
    /// M lines dropped since T`.
    static func noticeText(bytesPerSecond: Int, dropped: Int, sinceNanos: Int64) -> String {
        "app exceeded log rate limit (\(bytesPerSecond) bytes/sec): \(dropped) "
            + (dropped == 1 ? "line" : "lines") + " dropped since \(WallClock.utcTime(nanoseconds: sinceNanos))"
    }
}
