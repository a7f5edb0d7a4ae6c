import NIOConcurrencyHelpers
import NIOCore

/// The one connection a drain transport keeps: used by the runner's task,
/// and seen (`isOpen`) and cut (`abort`) from any thread.
final class DrainConnection: Sendable {
    private let state = NIOLockedValueBox<(channel: (any Channel)?, aborted: Bool)>((nil, false))

    /// Whether a connection is open now.
    var isOpen: Bool { state.withLockedValue { $0.channel?.isActive ?? false } }

    /// The open connection, if any; one the endpoint closed is forgotten.
    var active: (any Channel)? {
        let (channel, isActive) = state.withLockedValue { ($0.channel, $0.channel?.isActive ?? false) }
        if isActive { return channel }
        if let channel { drop(channel) }
        return nil
    }

    /// Keeps a new connection unless `abort` came while it was being made.
    func adopt(_ channel: any Channel) throws {
        let kept = state.withLockedValue { state -> Bool in
            guard !state.aborted else { return false }
            state.channel = channel
            return true
        }
        if !kept {
            channel.close(promise: nil)
            throw DrainSendError(reason: "the drain was stopped")
        }
    }

    /// Forgets and closes `channel` (a failed one), if it is the one kept.
    func drop(_ channel: any Channel) {
        state.withLockedValue { if $0.channel === channel { $0.channel = nil } }
        channel.close(promise: nil)
    }

    /// Closes the connection, failing a send under way; none is made after.
    func abort() {
        let channel = state.withLockedValue { state -> (any Channel)? in
            state.aborted = true
            return state.channel
        }
        channel?.close(promise: nil)
    }

    func close() async {
        let channel = state.withLockedValue { state -> (any Channel)? in
            defer { state.channel = nil }
            return state.channel
        }
        try? await channel?.close()
    }
}
