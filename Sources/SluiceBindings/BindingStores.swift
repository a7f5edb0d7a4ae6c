import Logging

/// Opens the bindings store a `--bindings` value names: a
/// `postgres://USER:PASSWORD@HOST:PORT/DATABASE` URL, or the path of a
/// SQLite file (created, with its directory, if missing). Either way the
/// schema is migrated before it returns. `password`, when given, is
/// PostgreSQL's instead of the URL's (read from a file, it need not be on a
/// command line or in the environment).
public enum BindingStores {
    public static func open(_ spec: String, password: String? = nil, logger: Logger) async throws -> any BindingStore {
        if isPostgres(spec) {
            return try await PostgresBindingStore.connect(url: spec, password: password, logger: logger)
        }
        if password != nil {
            throw BindingError.store("a password is for a postgres:// bindings store, not the SQLite file \(spec)")
        }
        return try SQLiteBindingStore(path: spec)
    }

    public static func isPostgres(_ spec: String) -> Bool {
        spec.hasPrefix("postgres://") || spec.hasPrefix("postgresql://")
    }

    /// A `--bindings` value fit to print: a URL's password hidden.
    public static func redacted(_ spec: String) -> String {
        spec.hasPrefix("postgres") ? PostgresBindingStore.redacted(spec) : spec
    }
}
