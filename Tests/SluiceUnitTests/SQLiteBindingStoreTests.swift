import Foundation
import Testing

@testable import SluiceBindings

/// The SQLite bindings store, on a real database file: adds, duplicates,
/// removal by id or name, and watchers that see changes made by another
/// handle on the same file (another process, in a real deployment).
@Suite struct SQLiteBindingStoreTests {
    static func temporaryPath() -> String {
        FileManager.default.temporaryDirectory
            .appendingPathComponent("sluice-bindings-\(UUID().uuidString)/bindings.sqlite").path
    }

    @Test func addListRemove() async throws {
        let store = try SQLiteBindingStore(path: Self.temporaryPath())
        let first = try await store.add(app: "app-1", url: "syslog://logs.example.com:514", name: "papertrail")
        let second = try await store.add(app: "app-1", url: "https://user:pw@collector.example.com/in", name: nil)
        _ = try await store.add(app: "app-2", url: "syslog://logs.example.com:514", name: "papertrail")
        #expect(first.name == "papertrail")
        #expect(second.name == second.id)
        #expect(second.id.count == 16)
        #expect(try await store.list(app: "app-1").map(\.id) == [first.id, second.id])
        #expect(try await store.list(app: nil).count == 3)
        #expect(!second.json.contains("pw"))

        await #expect(throws: BindingError.self) {
            try await store.add(app: "app-1", url: "syslog://logs.example.com:514", name: "other")
        }
        await #expect(throws: BindingError.self) {
            try await store.add(app: "app-1", url: "syslog://elsewhere:514", name: "papertrail")
        }
        #expect(try await store.remove(app: "app-1", idOrName: "papertrail").id == first.id)
        #expect(try await store.remove(app: "app-1", idOrName: second.id).id == second.id)
        await #expect(throws: BindingError.self) { try await store.remove(app: "app-1", idOrName: "papertrail") }
        #expect(try await store.list(app: "app-1").isEmpty)
        await store.close()
    }

    @Test func aWatcherSeesAnotherHandlesChanges() async throws {
        let path = Self.temporaryPath()
        let writer = try SQLiteBindingStore(path: path)
        let reader = try SQLiteBindingStore(path: path, pollInterval: .milliseconds(20))
        var updates = reader.watch().makeAsyncIterator()
        #expect(try await updates.next() == BindingSet())
        let added = try await writer.add(app: "a", url: "syslog://h:514", name: nil)
        #expect(try await updates.next()?.drains.map(\.id) == [added.id])
        _ = try await writer.remove(app: "a", idOrName: added.id)
        #expect(try await updates.next()?.drains.isEmpty == true)
        try await writer.setLogRateLimit(app: "noisy", bytesPerSecond: 1000)
        #expect(try await updates.next()?.logRateLimits == ["noisy": 1000])
        try await writer.setLogRateLimit(app: "noisy", bytesPerSecond: -1)
        try await writer.setLogRateLimit(app: "quiet", bytesPerSecond: 0)
        var latest = try await updates.next()
        if latest?.logRateLimits.count == 1 { latest = try await updates.next() }
        #expect(latest?.logRateLimits == ["noisy": -1, "quiet": 0])
        #expect(try await reader.logRateLimit(app: "quiet") == 0)
        try await writer.setLogRateLimit(app: "noisy", bytesPerSecond: nil)
        #expect(try await updates.next()?.logRateLimits == ["quiet": 0])
        #expect(try await reader.logRateLimit(app: "noisy") == nil)
        await writer.close()
        await reader.close()
    }

    @Test func reopeningKeepsBindingsAndTheSchema() async throws {
        let path = Self.temporaryPath()
        let store = try SQLiteBindingStore(path: path)
        let added = try await store.add(app: "a", url: "syslog-udp://h", name: "n")
        await store.close()
        let reopened = try SQLiteBindingStore(path: path)
        #expect(try await reopened.list(app: "a") == [added])
        await reopened.close()
    }
}
