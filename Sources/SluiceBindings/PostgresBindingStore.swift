import FoundationEssentials
import Logging
import NIOSSL
import PostgresNIO

/// Bindings in PostgreSQL, for a real cluster: controllers write, buffer
/// servers read. Every write sends `NOTIFY sluice_drain_bindings` in its
/// transaction, and watchers `LISTEN`, so a change reaches the servers as
/// soon as it commits.
public final class PostgresBindingStore: BindingStore {
    static let channel = "sluice_drain_bindings"

    private let client: PostgresClient
    private let runner: Task<Void, Never>
    private let logger: Logger

    private init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
        self.runner = Task { await client.run() }
    }

    /// Connects to `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=disable|prefer|require]`
    /// and migrates the schema; `password`, when given, instead of the URL's.
    public static func connect(url: String, password: String? = nil, logger: Logger) async throws -> PostgresBindingStore {
        var configuration = try configuration(url)
        if let password { configuration.password = password }
        let store = PostgresBindingStore(client: PostgresClient(configuration: configuration, backgroundLogger: logger), logger: logger)
        do {
            try await store.migrate()
        } catch {
            await store.close()
            throw BindingError.store("PostgreSQL at \(redacted(url)): \(String(reflecting: error))")
        }
        return store
    }

    static func configuration(_ text: String) throws -> PostgresClient.Configuration {
        guard let url = URL(string: text), let host = url.host, !host.isEmpty else {
            throw BindingError.store("expected postgres://USER:PASSWORD@HOST:PORT/DATABASE, not \(redacted(text))")
        }
        let database = url.path.hasPrefix("/") ? String(url.path.dropFirst()) : url.path
        let sslmode = URLComponents(string: text)?.queryItems?.first { $0.name == "sslmode" }?.value ?? "prefer"
        let tls: PostgresClient.Configuration.TLS
        // As libpq: prefer and require encrypt without checking the
        // certificate (Debian's stock server has a self-signed one);
        // verify-full checks it against the system's roots.
        var unverified = TLSConfiguration.makeClientConfiguration()
        unverified.certificateVerification = .none
        switch sslmode {
        case "disable": tls = .disable
        case "require": tls = .require(unverified)
        case "verify-full", "verify-ca": tls = .require(.makeClientConfiguration())
        default: tls = .prefer(unverified)
        }
        return PostgresClient.Configuration(
            host: host, port: url.port ?? 5432, username: url.user ?? "postgres", password: url.password,
            database: database.isEmpty ? nil : database, tls: tls)
    }

    /// The URL without its password, for messages.
    static func redacted(_ text: String) -> String {
        guard var components = URLComponents(string: text) else { return "(unparsable URL)" }
        if components.password != nil { components.password = "***" }
        return components.string ?? "(unparsable URL)"
    }

    /// The schema, version 1 (drains) then 2 (app log rate limits). Several processes may start at once: an
    /// advisory lock lets one create it while the others wait.
    private func migrate() async throws {
        try await client.withTransaction(logger: logger) { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(7447001)", logger: logger)
            try await connection.query(
                "CREATE TABLE IF NOT EXISTS sluice_schema (version INTEGER NOT NULL)", logger: logger)
            var version = 0
            for try await (found) in try await connection.query(
                "SELECT max(version) FROM sluice_schema", logger: logger
            ).decode(Int?.self) {
                version = found ?? 0
            }
            if version < 1 {
                try await connection.query(
                    """
                    CREATE TABLE drain_bindings (
                        id TEXT PRIMARY KEY,
                        app TEXT NOT NULL,
                        name TEXT NOT NULL,
                        url TEXT NOT NULL,
                        created_at DOUBLE PRECISION NOT NULL,
                        UNIQUE (app, url),
                        UNIQUE (app, name))
                    """, logger: logger)
                try await connection.query("INSERT INTO sluice_schema (version) VALUES (1)", logger: logger)
            }
            if version < 2 {
                try await connection.query(
                    """
                    CREATE TABLE app_log_rate_limits (
                        app TEXT PRIMARY KEY,
                        bytes_per_second BIGINT NOT NULL)
                    """, logger: logger)
                try await connection.query("INSERT INTO sluice_schema (version) VALUES (2)", logger: logger)
            }
        }
    }

    public func add(app: String, url: String, name: String?) async throws -> DrainBinding {
        var binding = DrainBinding(
            id: DrainBinding.newID(), app: app, name: name ?? "", url: url, createdAt: Date().timeIntervalSince1970)
        if binding.name.isEmpty { binding.name = binding.id }
        let row = binding
        let logger = self.logger
        return try await client.withTransaction(logger: logger) { connection in
            // Serializes adds to one app, so that the checks below hold at commit.
            try await connection.query("SELECT pg_advisory_xact_lock(hashtext(\(app)))", logger: logger)
            let existing = try await Self.fetch(connection, app: app, logger: logger)
            if existing.contains(where: { $0.url == url }) {
                throw BindingError.duplicate("\(app) already has a drain to \(row.redactedURL)")
            }
            if existing.contains(where: { $0.name == row.name }) {
                throw BindingError.duplicate("\(app) already has a drain named \(row.name)")
            }
            try await connection.query(
                """
                INSERT INTO drain_bindings (id, app, name, url, created_at)
                VALUES (\(row.id), \(row.app), \(row.name), \(row.url), \(row.createdAt))
                """, logger: logger)
            try await connection.query("NOTIFY sluice_drain_bindings", logger: logger)
            return row
        }
    }

    public func list(app: String?) async throws -> [DrainBinding] {
        let logger = self.logger
        return try await client.withConnection { connection in
            try await Self.fetch(connection, app: app, logger: logger)
        }
    }

    public func remove(app: String, idOrName: String) async throws -> DrainBinding {
        let logger = self.logger
        return try await client.withTransaction(logger: logger) { connection in
            let found = try await Self.fetch(connection, app: app, logger: logger).first {
                $0.id == idOrName || $0.name == idOrName
            }
            guard let found else { throw BindingError.notFound("\(app) has no drain with id or name \(idOrName)") }
            try await connection.query("DELETE FROM drain_bindings WHERE id = \(found.id)", logger: logger)
            try await connection.query("NOTIFY sluice_drain_bindings", logger: logger)
            return found
        }
    }

    public func setLogRateLimit(app: String, bytesPerSecond: Int?) async throws {
        let logger = self.logger
        try await client.withTransaction(logger: logger) { connection in
            if let bytesPerSecond {
                try await connection.query(
                    """
                    INSERT INTO app_log_rate_limits (app, bytes_per_second) VALUES (\(app), \(bytesPerSecond))
                    ON CONFLICT (app) DO UPDATE SET bytes_per_second = EXCLUDED.bytes_per_second
                    """, logger: logger)
            } else {
                try await connection.query("DELETE FROM app_log_rate_limits WHERE app = \(app)", logger: logger)
            }
            try await connection.query("NOTIFY sluice_drain_bindings", logger: logger)
        }
    }

    public func logRateLimit(app: String) async throws -> Int? {
        let logger = self.logger
        return try await client.withConnection { connection in
            var found: Int? = nil
            for try await value in try await connection.query(
                "SELECT bytes_per_second FROM app_log_rate_limits WHERE app = \(app)", logger: logger
            ).decode(Int.self) {
                found = value
            }
            return found
        }
    }

    /// Listens first, then reads the whole set, so that no change falls
    /// between the two; reads it again on each notification.
    public func watch() -> AsyncThrowingStream<BindingSet, any Error> {
        let client = self.client
        let logger = self.logger
        return AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    try await client.withConnection { connection in
                        try await connection.listen(on: Self.channel) { notifications in
                            continuation.yield(try await Self.fetchAll(connection, logger: logger))
                            for try await _ in notifications {
                                continuation.yield(try await Self.fetchAll(connection, logger: logger))
                            }
                        }
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    public func close() async {
        runner.cancel()
        await runner.value
    }

    static func fetchAll(_ connection: PostgresConnection, logger: Logger) async throws -> BindingSet {
        var limits: [String: Int] = [:]
        for try await (app, limit) in try await connection.query(
            "SELECT app, bytes_per_second FROM app_log_rate_limits", logger: logger
        ).decode((String, Int).self) {
            limits[app] = limit
        }
        return BindingSet(drains: try await fetch(connection, app: nil, logger: logger), logRateLimits: limits)
    }

    static func fetch(_ connection: PostgresConnection, app: String?, logger: Logger) async throws -> [DrainBinding] {
        let rows: PostgresRowSequence
        if let app {
            rows = try await connection.query(
                "SELECT id, app, name, url, created_at FROM drain_bindings WHERE app = \(app) ORDER BY created_at, id",
                logger: logger)
        } else {
            rows = try await connection.query(
                "SELECT id, app, name, url, created_at FROM drain_bindings ORDER BY app, created_at, id",
                logger: logger)
        }
        var bindings: [DrainBinding] = []
        for try await (id, app, name, url, createdAt) in rows.decode((String, String, String, String, Double).self) {
            bindings.append(DrainBinding(id: id, app: app, name: name, url: url, createdAt: createdAt))
        }
        return bindings
    }
}
