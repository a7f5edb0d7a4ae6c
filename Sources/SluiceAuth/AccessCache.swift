/// The external check's answers, per token and app, kept for a short
/// while so that a reconnecting tail does not ask again each time. Only
/// yes and no are kept; a failure to ask is not. Plain value: the caller
/// passes the time.
public struct AccessCache: Sendable {
    /// By bytes: Swift's `String` equality is canonical equivalence.
    private struct Key: Hashable {
        var token: [UInt8]
        var app: [UInt8]

        init(token: String, app: String) {
            self.token = Array(token.utf8)
            self.app = Array(app.utf8)
        }
    }

    private var answers: [Key: (allowed: Bool, until: Int64)] = [:]
    public let lifetimeNanos: Int64
    public let capacity: Int

    public init(lifetimeNanos: Int64 = 5_000_000_000, capacity: Int = 10_000) {
        self.lifetimeNanos = lifetimeNanos
        self.capacity = capacity
    }

    public func answer(token: String, app: String, now: Int64) -> Bool? {
        guard let entry = answers[Key(token: token, app: app)], now < entry.until else { return nil }
        return entry.allowed
    }

    public mutating func remember(token: String, app: String, allowed: Bool, now: Int64) {
        if answers.count >= capacity { answers = answers.filter { now < $0.value.until } }
        if answers.count >= capacity { answers.removeAll() }
        answers[Key(token: token, app: app)] = (allowed, now + lifetimeNanos)
    }

    public var count: Int { answers.count }
}
