import Foundation
import GRDB

/// Bindings in an embedded SQLite database (the default: one file under
/// the data directory, shared by the processes of one machine). Watchers
/// poll a change counter that every write bumps in the same transaction.
public final class SQLiteBindingStore: BindingStore {
    public let path: String
    private let pool: DatabasePool
    private let pollInterval: Duration

    public init(path: String, pollInterval: Duration = .milliseconds(500)) throws {
        self.path = path
        self.pollInterval = pollInterval
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        var configuration = Configuration()
        // Controllers and servers may share the file: wait for each other's
        // writes rather than failing at once.
        configuration.busyMode = .timeout(5)
        // Processes started together (a controller and its servers) may
        // open and migrate a new file at once. Opening switches the file to
        // WAL, which SQLite refuses ("database is locked") while another
        // connection is doing the same, whatever the busy timeout; and the
        // process that loses the migration race fails on tables the other
        // just made. Either way a second look succeeds: both are retried.
        pool = try Self.retrying { try DatabasePool(path: path, configuration: configuration) }
        try Self.retrying { try Self.migrator.migrate(pool) }
    }

    /// Runs `body` until it succeeds, up to 10 times over about 2.5 s, with
    /// growing, jittered waits between.
    static func retrying<T>(_ body: () throws -> T) throws -> T {
        var attempt = 0
        while true {
            do {
                return try body()
            } catch {
                attempt += 1
                if attempt == 10 { throw error }
                usleep(UInt32(50_000 * attempt + Int.random(in: 0..<20_000)))
            }
        }
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("1-drain-bindings") { db in
            try db.execute(
                sql: """
                    CREATE TABLE drain_bindings (
                        id TEXT PRIMARY KEY,
                        app TEXT NOT NULL,
                        name TEXT NOT NULL,
                        url TEXT NOT NULL,
                        created_at DOUBLE NOT NULL,
                        UNIQUE (app, url),
                        UNIQUE (app, name));
                    CREATE TABLE binding_changes (version INTEGER NOT NULL);
                    INSERT INTO binding_changes (version) VALUES (0);
                    """)
        }
        migrator.registerMigration("2-app-log-rate-limits") { db in
            try db.execute(
                sql: """
                    CREATE TABLE app_log_rate_limits (
                        app TEXT PRIMARY KEY,
                        bytes_per_second INTEGER NOT NULL);
                    """)
        }
        return migrator
    }

    public func add(app: String, url: String, name: String?) async throws -> DrainBinding {
        let binding = DrainBinding(
            id: DrainBinding.newID(), app: app, name: name ?? "", url: url,
            createdAt: Date().timeIntervalSince1970)
        return try await pool.write { db in
            var binding = binding
            if binding.name.isEmpty { binding.name = binding.id }
            if try Bool.fetchOne(
                db, sql: "SELECT 1 FROM drain_bindings WHERE app = ? AND url = ?", arguments: [app, url]) != nil
            {
                throw BindingError.duplicate("\(app) already has a drain to \(binding.redactedURL)")
            }
            if try Bool.fetchOne(
                db, sql: "SELECT 1 FROM drain_bindings WHERE app = ? AND name = ?", arguments: [app, binding.name])
                != nil
            {
                throw BindingError.duplicate("\(app) already has a drain named \(binding.name)")
            }
            try db.execute(
                sql: "INSERT INTO drain_bindings (id, app, name, url, created_at) VALUES (?, ?, ?, ?, ?)",
                arguments: [binding.id, binding.app, binding.name, binding.url, binding.createdAt])
            try db.execute(sql: "UPDATE binding_changes SET version = version + 1")
            return binding
        }
    }

    public func list(app: String?) async throws -> [DrainBinding] {
        try await pool.read { db in try Self.fetch(db, app: app) }
    }

    public func remove(app: String, idOrName: String) async throws -> DrainBinding {
        try await pool.write { db in
            let found = try Self.fetch(db, app: app).first { $0.id == idOrName || $0.name == idOrName }
            guard let found else { throw BindingError.notFound("\(app) has no drain with id or name \(idOrName)") }
            try db.execute(sql: "DELETE FROM drain_bindings WHERE id = ?", arguments: [found.id])
            try db.execute(sql: "UPDATE binding_changes SET version = version + 1")
            return found
        }
    }

    public func setLogRateLimit(app: String, bytesPerSecond: Int?) async throws {
        try await pool.write { db in
            if let bytesPerSecond {
                try db.execute(
                    sql: """
                        INSERT INTO app_log_rate_limits (app, bytes_per_second) VALUES (?, ?)
                        ON CONFLICT (app) DO UPDATE SET bytes_per_second = excluded.bytes_per_second
                        """, arguments: [app, bytesPerSecond])
            } else {
                try db.execute(sql: "DELETE FROM app_log_rate_limits WHERE app = ?", arguments: [app])
            }
            try db.execute(sql: "UPDATE binding_changes SET version = version + 1")
        }
    }

    public func logRateLimit(app: String) async throws -> Int? {
        try await pool.read { db in
            try Int.fetchOne(db, sql: "SELECT bytes_per_second FROM app_log_rate_limits WHERE app = ?", arguments: [app])
        }
    }

    public func watch() -> AsyncThrowingStream<BindingSet, any Error> {
        let pool = self.pool
        let interval = pollInterval
        return AsyncThrowingStream { continuation in
            let task = Task {
                var seen: Int64? = nil
                while !Task.isCancelled {
                    let known = seen
                    do {
                        let (version, bindings) = try await pool.read { db -> (Int64, BindingSet?) in
                            let version = try Int64.fetchOne(db, sql: "SELECT version FROM binding_changes") ?? 0
                            return (version, version == known ? nil : try Self.fetchAll(db))
                        }
                        if let bindings {
                            seen = version
                            continuation.yield(bindings)
                        }
                    } catch {
                        continuation.finish(throwing: error)
                        return
                    }
                    try? await Task.sleep(for: interval)
                }
                continuation.finish()
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    public func close() async {
        try? pool.close()
    }

    static func fetchAll(_ db: Database) throws -> BindingSet {
        var limits: [String: Int] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT app, bytes_per_second FROM app_log_rate_limits") {
            limits[row["app"]] = row["bytes_per_second"]
        }
        return BindingSet(drains: try fetch(db, app: nil), logRateLimits: limits)
    }

    static func fetch(_ db: Database, app: String?) throws -> [DrainBinding] {
        let rows: [Row]
        let columns = "SELECT id, app, name, url, created_at FROM drain_bindings"
        if let app {
            rows = try Row.fetchAll(db, sql: "\(columns) WHERE app = ? ORDER BY created_at, id", arguments: [app])
        } else {
            rows = try Row.fetchAll(db, sql: "\(columns) ORDER BY app, created_at, id")
        }
        return rows.map { row in
            DrainBinding(id: row["id"], app: row["app"], name: row["name"], url: row["url"], createdAt: row["created_at"])
        }
    }
}
