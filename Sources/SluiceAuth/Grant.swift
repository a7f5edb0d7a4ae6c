import JWTKit

/// What a verified token lets its bearer read.
public struct Grant: Equatable, Sendable {
    /// Scopes that read every app, the firehose and every drain: Sluice's
    /// own, and Cloud Foundry's two.
    public static let adminScopes: Set<String> = ["sluice.admin", "logs.admin", "doppler.firehose"]

    public var admin: Bool
    /// The apps the token names (`app_ids`).
    public var apps: Set<String>
    /// The token as it came, for an external check (`--authorize-url`).
    public var token: String
    /// Who it is, for logs: `sub`, if the token says.
    public var subject: String?

    /// Whether the token names `app`, byte for byte: Swift compares strings
    /// by canonical equivalence, but apps are told apart by their bytes
    /// (`café` precomposed and decomposed are two apps).
    public func names(_ app: String) -> Bool {
        apps.contains { $0.utf8.elementsEqual(app.utf8) }
    }

    public init(admin: Bool, apps: Set<String>, token: String, subject: String? = nil) {
        self.admin = admin
        self.apps = apps
        self.token = token
        self.subject = subject
    }

    public init(claims: TokenClaims, token: String) {
        let scopes = Set(claims.scope?.values ?? [])
        self.init(
            admin: !scopes.isDisjoint(with: Self.adminScopes), apps: Set(claims.app_ids ?? []), token: token,
            subject: claims.sub?.value)
    }
}
