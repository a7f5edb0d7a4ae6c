import NIOCore

/// Takes a copy of the Log envelopes a buffer server stores for one app:
/// what a drain attaches to. The server knows taps only by this protocol.
public protocol EnvelopeTap: AnyObject, Sendable {
    /// The Log envelopes of one stored batch for this tap's app, as their
    /// bytes, in the order stored. Called under the store's lock: it must
    /// only queue, never wait.
    func enqueue(_ envelopes: [ByteBuffer])
    /// The same for this tap's binding at every server (a drain binding's
    /// id as a number), so that a leaving server's tap can hand what it
    /// holds to the same binding's tap at the server that takes the app.
    var handoverKey: UInt64 { get }
    /// The server is leaving: what this tap holds and cannot deliver now
    /// (its endpoint is down), taken out, oldest first, for the server that
    /// takes the app next; nothing while it delivers (it delivers what it
    /// holds before the server exits). Called under the store's lock.
    func handOff() -> [ByteBuffer]
    /// What the same binding's tap at a leaving server handed off, queued
    /// as `enqueue` queues. Called under the store's lock.
    func takeOver(_ envelopes: [ByteBuffer])
}

/// Where taps attach: a buffer server's store, as the manager that keeps
/// it in step with the bindings store sees it.
public protocol TapPoint: AnyObject, Sendable {
    /// Replaces every app's taps.
    func setTaps(_ taps: [String: [any EnvelopeTap]])
    /// Replaces the per-app log rate limits (bytes per second; -1: none for
    /// that app); an app not named has the server's default.
    func setAppLogRateLimits(_ limits: [String: Int])
    /// Writes a notice into an app's stream: kept with its recent lines and
    /// sent to its live readers, not to its taps.
    func ingestNotice(app: String, text: String)
}
