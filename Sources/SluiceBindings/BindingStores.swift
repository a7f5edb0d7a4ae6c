import Logging

/// Opens the bindings store a `--bindings` value names: a
/// `postgres://USER:PASSWORD@HOST:PORT/DATABASE` URL, or the path of a
/// SQLite file (created, with its directory, if missing). Either way the
/// schema is migrated before it returns.
public enum BindingStores {
    public static func open(_ spec: String, logger: Logger) async throws -> any BindingStore {
        if spec.hasPrefix("postgres://") || spec.hasPrefix("postgresql://") {
            return try await PostgresBindingStore.connect(url: spec, logger: logger)
        }
        return try SQLiteBindingStore(path: spec)
    }

    /// A `--bindings` value fit to print: a URL's password hidden.
    public static func redacted(_ spec: String) -> String {
        spec.hasPrefix("postgres") ? PostgresBindingStore.redacted(spec) : spec
    }
}
