/// What a request reads or changes, as the access rules see it.
public enum Resource: Equatable, Sendable {
    /// Open to all: `/healthz`, `/metrics`.
    case open
    /// One app's logs, tail or drains.
    case app(String)
    /// Several apps' envelopes at once (the RLP gateway's `source_id`s):
    /// the token must be able to read each.
    case apps([String])
    /// An app setting only an admin changes (its log rate limit).
    case appAdmin(String)
    /// Every app's drains: an admin sees all, others only their apps'.
    case everyApp
    /// Every app's envelopes.
    case firehose
}

/// How a request is answered, as Loggregator's and log-cache's users know
/// it: no token or a bad one 401; an app the token may not read 404,
/// exactly as an app that does not exist, so nothing leaks; an admin-only
/// thing asked by a token that may read the app but is no admin 403; an
/// external check that cannot be made 503, never yes.
public enum AccessOutcome: Equatable, Sendable {
    case allowed(Grant)
    case unauthorized(reason: String?)
    case notFound
    case forbidden(String)
    case unavailable(String)
}

/// The rules: plain logic, no I/O.
public enum AccessPolicy {
    public enum Decision: Equatable, Sendable {
        case allow
        case forbidden(String)
        /// The token names no such app: ask `--authorize-url`, if set.
        case askExternally(app: String)
    }

    public static func decide(_ grant: Grant, _ resource: Resource) -> Decision {
        switch resource {
        case .open, .everyApp:
            return .allow
        case .app(let app):
            return grant.admin || grant.names(app) ? .allow : .askExternally(app: app)
        case .apps(let apps):
            if grant.admin { return .allow }
            return apps.first { !grant.names($0) }.map { .askExternally(app: $0) } ?? .allow
        case .appAdmin(let app):
            if grant.admin { return .allow }
            // Whether the app may even be named to this token decides 404
            // against 403.
            return grant.names(app)
                ? .forbidden("changing an app's log rate limit takes an admin token (scope sluice.admin)")
                : .askExternally(app: app)
        case .firehose:
            return grant.admin
                ? .allow
                : .forbidden("the firehose takes an admin token (scope sluice.admin, logs.admin or doppler.firehose)")
        }
    }
}
