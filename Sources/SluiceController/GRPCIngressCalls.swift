import NIOConcurrencyHelpers

/// A controller's open gRPC ingress calls, so that a graceful stop can end
/// them (`IngressCall.stop`) and wait until each is answered. A call that
/// opens once the stop has begun is refused before it takes anything.
final class GRPCIngressCalls: Sendable {
    private struct State {
        var stopping = false
        var open: [ObjectIdentifier: @Sendable () -> Void] = [:]
    }

    private let state = NIOLockedValueBox(State())

    /// A call opened; `stop` ends it (on its own event loop). Returns false,
    /// registering nothing, once the stop has begun: the call is refused.
    func opened(_ id: ObjectIdentifier, stop: @escaping @Sendable () -> Void) -> Bool {
        state.withLockedValue { state in
            guard !state.stopping else { return false }
            state.open[id] = stop
            return true
        }
    }

    /// The call was answered, or its stream closed.
    func closed(_ id: ObjectIdentifier) {
        state.withLockedValue { _ = $0.open.removeValue(forKey: id) }
    }

    /// The stop begins: every open call is told.
    func stopAll() {
        let open = state.withLockedValue { state in
            state.stopping = true
            return Array(state.open.values)
        }
        for stop in open { stop() }
    }

    /// Calls not answered yet.
    var openCount: Int { state.withLockedValue { $0.open.count } }
}
