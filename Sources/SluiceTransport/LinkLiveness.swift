import NIOCore

/// When to send a heartbeat on a link and when to take the peer for dead,
/// from what was heard when. A peer that vanishes without closing its
/// socket (a host gone, a silent partition: packets dropped, no reset)
/// leaves TCP retrying for many minutes; this notices it in about
/// `heartbeat + silence`, idle or busy.
///
/// The link calls `check` every `checkInterval`. While nothing waits for
/// an answer, a link that has not heard or not sent for `heartbeat` is
/// told to `probe` (send
/// something the peer must answer: an empty ENVELOPES frame, which it
/// acknowledges). While something waits, a peer silent for `silence` since
/// the later of the last thing heard and the start of the wait is `dead`.
/// A check that runs late (the link's event loop was busy and may not have
/// read what the peer sent) counts nothing against the peer.
public struct LinkLiveness: Sendable {
    public struct Settings: Sendable, Equatable {
        /// Silence on an idle link after which a probe goes out.
        public var heartbeat: TimeAmount
        /// Silence, while an answer is owed, after which the peer is dead.
        public var silence: TimeAmount
        /// How often the link checks.
        public var checkInterval: TimeAmount

        public init(heartbeat: TimeAmount, silence: TimeAmount, checkInterval: TimeAmount) {
            self.heartbeat = heartbeat
            self.silence = silence
            self.checkInterval = checkInterval
        }
    }

    public enum Action: Equatable, Sendable {
        case none
        /// Send something the peer answers.
        case probe
        /// The peer said nothing for this long while it owed an answer.
        case dead(silentFor: TimeAmount)
    }

    public let settings: Settings
    private var lastHeard: NIODeadline
    private var lastSent: NIODeadline
    private var waitingSince: NIODeadline
    private var lastCheck: NIODeadline

    public init(_ settings: Settings, now: NIODeadline) {
        self.settings = settings
        lastHeard = now
        lastSent = now
        waitingSince = now
        lastCheck = now
    }

    /// A new connection: nothing counts from before it.
    public mutating func connected(now: NIODeadline) {
        lastHeard = now
        lastSent = now
        waitingSince = now
        lastCheck = now
    }

    /// The peer sent something.
    public mutating func heard(now: NIODeadline) {
        lastHeard = now
    }

    /// Something went out to the peer.
    public mutating func sent(now: NIODeadline) {
        lastSent = now
    }

    /// Something the peer must answer went out while nothing else waited.
    public mutating func startedWaiting(now: NIODeadline) {
        waitingSince = now
    }

    /// What to do now; `waiting` says whether an answer is owed.
    public mutating func check(now: NIODeadline, waiting: Bool) -> Action {
        let late = now - lastCheck > settings.checkInterval * 2
        lastCheck = now
        guard !late else { return .none }
        if waiting {
            let silent = now - max(lastHeard, waitingSince)
            return silent > settings.silence ? .dead(silentFor: silent) : .none
        }
        // Idle either way: a link that only reads (a controller's link that
        // carries subscriptions) also probes, so that its peer hears it.
        return now - min(lastHeard, lastSent) >= settings.heartbeat ? .probe : .none
    }
}
