import Logging
import NIOConcurrencyHelpers

/// Keeps what a logger says, so that a test can wait for a line.
final class LogRecorder: Sendable {
    struct Entry: Sendable, CustomStringConvertible {
        var level: Logger.Level
        var message: String
        var metadata: [String: String]
        var description: String { "\(level) \(message) \(metadata.sorted { $0.key < $1.key })" }
    }

    private struct Waiter {
        var id: Int
        var match: @Sendable (Entry) -> Bool
        var continuation: CheckedContinuation<Entry?, Never>
    }

    private struct State {
        var entries: [Entry] = []
        var waiters: [Waiter] = []
        var nextID = 0
    }

    private let state = NIOLockedValueBox(State())

    var logger: Logger {
        var logger = Logger(label: "test") { _ in Handler(recorder: self) }
        logger.logLevel = .debug
        return logger
    }

    var entries: [Entry] { state.withLockedValue { $0.entries } }

    func add(_ entry: Entry) {
        let ready = state.withLockedValue { state -> [CheckedContinuation<Entry?, Never>] in
            state.entries.append(entry)
            var ready: [CheckedContinuation<Entry?, Never>] = []
            state.waiters.removeAll { waiter in
                guard waiter.match(entry) else { return false }
                ready.append(waiter.continuation)
                return true
            }
            return ready
        }
        for continuation in ready { continuation.resume(returning: entry) }
    }

    /// The first entry `match` takes, waiting for it up to `timeout`.
    func first(timeout: Duration = .seconds(30), where match: @escaping @Sendable (Entry) -> Bool) async -> Entry? {
        let id = state.withLockedValue { state in
            defer { state.nextID += 1 }
            return state.nextID
        }
        return await withTaskGroup(of: Entry?.self) { group in
            group.addTask {
                await withCheckedContinuation { continuation in
                    let now = self.state.withLockedValue { state -> Entry? in
                        if let found = state.entries.first(where: match) { return found }
                        state.waiters.append(Waiter(id: id, match: match, continuation: continuation))
                        return nil
                    }
                    if let now { continuation.resume(returning: now) }
                }
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            let result = await group.next() ?? nil
            group.cancelAll()
            self.expire(id)
            return result
        }
    }

    /// Ends a wait that is still waiting, with nothing.
    private func expire(_ id: Int) {
        let waiting = state.withLockedValue { state -> CheckedContinuation<Entry?, Never>? in
            guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
            return state.waiters.remove(at: index).continuation
        }
        waiting?.resume(returning: nil)
    }

    private struct Handler: LogHandler {
        let recorder: LogRecorder
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .debug

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            var all: [String: String] = [:]
            for (key, value) in metadata.merging(event.metadata ?? [:], uniquingKeysWith: { $1 }) { all[key] = "\(value)" }
            recorder.add(Entry(level: event.level, message: "\(event.message)", metadata: all))
        }
    }
}
