import SluiceWire

/// Cloud Foundry's per-instance log rate limit, at the source: a token
/// bucket per (app, instance) in bytes of log payload per second, rate and
/// burst both the limit. A line that does not fit is dropped, and so is
/// everything else from that instance for the next second; the first drop
/// of such a second is to be told in the app's own logs as Diego tells it:
/// `app instance exceeded log rate limit (N bytes/sec)`. A line larger than
/// the limit never passes; a limit of 0 lets nothing through.
public struct LogRateLimiter: Sendable {
    public typealias Verdict = TokenBucket.Verdict

    public let bytesPerSecond: Int
    private var buckets: [Key: TokenBucket] = [:]
    /// Buckets past which idle ones are forgotten (a full bucket and a new
    /// one are the same).
    private let maxIdleBuckets: Int

    private struct Key: Hashable {
        var app: String
        var instance: String
    }

    public init(bytesPerSecond: Int, maxIdleBuckets: Int = 10_000) {
        precondition(bytesPerSecond >= 0)
        self.bytesPerSecond = bytesPerSecond
        self.maxIdleBuckets = maxIdleBuckets
    }

    /// The notice's text, exactly as Cloud Foundry writes it.
    public var noticeText: String { "app instance exceeded log rate limit (\(bytesPerSecond) bytes/sec)" }

    /// Whether a line of `bytes` from `instance` of `app` at `now`
    /// (nanoseconds) goes on.
    public mutating func admit(app: String, instance: String, bytes: Int, now: Int64) -> Verdict {
        let key = Key(app: app, instance: instance)
        if buckets[key] == nil {
            if buckets.count >= maxIdleBuckets {
                let limit = bytesPerSecond
                buckets = buckets.filter { !$0.value.isIdle(bytesPerSecond: limit, now: now) }
            }
            buckets[key] = TokenBucket(bytesPerSecond: bytesPerSecond, now: now)
        }
        return buckets[key]!.admit(bytes: bytes, bytesPerSecond: bytesPerSecond, now: now)
    }

    public var bucketCount: Int { buckets.count }
}

extension LogShipper.LineOrigin {
    /// Where an encoded envelope comes from: its `instance_id` (field 8)
    /// and, for a Log (field 4), its payload's bytes (field 1 of the log).
    /// An envelope that cannot be read this far counts as not a log.
    public init(app: String, envelope: UnsafeRawBufferPointer) {
        var instance = ""
        var logBytes: Int? = nil
        var reader = ProtoReader(envelope)
        do {
            while let (field, wireType) = try reader.readTag() {
                switch (field, wireType) {
                case (8, .lengthDelimited):
                    let range = try reader.readLengthDelimited()
                    instance = String(decoding: UnsafeRawBufferPointer(rebasing: envelope[range]), as: UTF8.self)
                case (4, .lengthDelimited):
                    let log = UnsafeRawBufferPointer(rebasing: envelope[try reader.readLengthDelimited()])
                    var inner = ProtoReader(log)
                    logBytes = 0
                    while let (innerField, innerType) = try inner.readTag() {
                        if innerField == 1 && innerType == .lengthDelimited {
                            logBytes = try inner.readLengthDelimited().count
                        } else {
                            try inner.skip(innerType)
                        }
                    }
                default:
                    if wireType == .lengthDelimited && EnvelopeFields.isMessageField(field) { logBytes = nil }
                    try reader.skip(wireType)
                }
            }
        } catch {
            logBytes = nil
        }
        self.init(app: app, instance: instance, logBytes: logBytes)
    }
}
