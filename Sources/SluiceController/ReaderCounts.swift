import NIOCore

/// How many live readers (websocket tails, firehose readers) a controller
/// serves, in all and per app (or per firehose subscription), and whether
/// one more may come. Plain state, no I/O: the controller keeps one behind
/// a lock, asks it before answering an upgrade and tells it when a reader's
/// connection closes.
struct ReaderCounts {
    /// The limits; past either a new reader is refused with 429.
    struct Limits: Sendable, Equatable {
        /// Readers at once over every app.
        var total: Int
        /// Readers at once of one app, or of one firehose subscription.
        var perApp: Int

        init(total: Int, perApp: Int) {
            precondition(total > 0 && perApp > 0)
            self.total = total
            self.perApp = perApp
        }
    }

    /// Which limit refused a reader: the metric's `reason` label.
    enum Refusal: String, Equatable {
        case total
        case perApp = "per_app"
    }

    let limits: Limits
    private(set) var total = 0
    private var byTarget: [StreamTarget: Int] = [:]
    /// When a refusal of each kind was last logged (one line in 10 s).
    private var lastWarned: [Refusal: NIODeadline] = [:]
    static let warningInterval = TimeAmount.seconds(10)

    init(limits: Limits) {
        self.limits = limits
    }

    func count(of target: StreamTarget) -> Int { byTarget[target] ?? 0 }

    /// Takes a reader of `target` unless a limit is reached; on a refusal,
    /// also says whether to log it (at most once in 10 s for each kind).
    mutating func admit(_ target: StreamTarget, now: NIODeadline) -> (refusal: Refusal, log: Bool)? {
        let refusal: Refusal
        if total >= limits.total {
            refusal = .total
        } else if count(of: target) >= limits.perApp {
            refusal = .perApp
        } else {
            total += 1
            byTarget[target, default: 0] += 1
            return nil
        }
        if let last = lastWarned[refusal], now - last < Self.warningInterval {
            return (refusal, false)
        }
        lastWarned[refusal] = now
        return (refusal, true)
    }

    /// A reader taken by `admit` is gone.
    mutating func release(_ target: StreamTarget) {
        guard let count = byTarget[target], count > 0 else { return }
        total -= 1
        byTarget[target] = count == 1 ? nil : count - 1
    }
}
