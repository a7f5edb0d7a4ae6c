/// How a controller checks tokens: the keys it trusts, the claims it
/// requires, and an optional external check.
public struct TokenSettings: Sendable, Equatable {
    /// Files each holding a shared secret (HS256).
    public var secretFiles: [String]
    /// PEM files each holding a public key (RSA: RS256; EC P-256: ES256).
    /// Several may be listed: an old key beside its replacement.
    public var publicKeyFiles: [String]
    /// JWKS files, the form a UAA or any OIDC issuer publishes (`kid` on
    /// every key).
    public var jwksFiles: [String]
    /// Required `iss`, if set.
    public var issuer: String?
    /// Required among `aud`, if set.
    public var audience: String?
    /// Clock skew allowed on `exp` and `nbf`.
    public var leewaySeconds: Int
    /// `http://HOST:PORT/…{app}…`: asked, with the caller's token, about a
    /// valid token that names no such app; a 2xx is yes.
    public var authorizeURL: String?
    /// How long the external check's yes or no is kept, per token and app.
    public var authorizeCacheSeconds: Int

    public init(
        secretFiles: [String] = [], publicKeyFiles: [String] = [], jwksFiles: [String] = [], issuer: String? = nil,
        audience: String? = nil, leewaySeconds: Int = 60, authorizeURL: String? = nil, authorizeCacheSeconds: Int = 5
    ) {
        self.secretFiles = secretFiles
        self.publicKeyFiles = publicKeyFiles
        self.jwksFiles = jwksFiles
        self.issuer = issuer
        self.audience = audience
        self.leewaySeconds = leewaySeconds
        self.authorizeURL = authorizeURL
        self.authorizeCacheSeconds = authorizeCacheSeconds
    }

    /// No key at all: nothing could be verified.
    public var hasKeys: Bool { !(secretFiles.isEmpty && publicKeyFiles.isEmpty && jwksFiles.isEmpty) }
}
