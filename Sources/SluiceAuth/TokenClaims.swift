import FoundationEssentials
import JWTKit

/// The claims Sluice reads from a token: UAA's and any OIDC issuer's
/// standard ones, `scope` (a list, or one space-separated string as some
/// issuers write it) and Sluice's `app_ids`.
public struct TokenClaims: JWTPayload, Equatable {
    public var exp: ExpirationClaim?
    public var nbf: NotBeforeClaim?
    public var iat: IssuedAtClaim?
    public var iss: IssuerClaim?
    public var aud: AudienceClaim?
    public var sub: SubjectClaim?
    public var scope: ScopeList?
    public var app_ids: [String]?

    public init(
        exp: Date?, nbf: Date? = nil, iat: Date? = nil, iss: String? = nil, aud: [String]? = nil, sub: String? = nil,
        scope: [String]? = nil, appIDs: [String]? = nil
    ) {
        self.exp = exp.map { ExpirationClaim(value: $0) }
        self.nbf = nbf.map { NotBeforeClaim(value: $0) }
        self.iat = iat.map { IssuedAtClaim(value: $0) }
        self.iss = iss.map { IssuerClaim(value: $0) }
        self.aud = aud.map { AudienceClaim(value: $0) }
        self.sub = sub.map { SubjectClaim(value: $0) }
        self.scope = scope.map(ScopeList.init)
        self.app_ids = appIDs
    }

    /// Claims are checked by `TokenVerifier` once the signature holds, so
    /// that a token's reason for refusal is the real one whichever key
    /// signed it.
    public func verify(using algorithm: some JWTAlgorithm) async throws {}
}

/// `scope` as a list (UAA) or as one space-separated string (RFC 8693).
public struct ScopeList: Codable, Equatable, Sendable {
    public var values: [String]

    public init(_ values: [String]) {
        self.values = values
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let list = try? container.decode([String].self) {
            values = list
        } else {
            values = try container.decode(String.self).split(separator: " ").map(String.init)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(values)
    }
}
