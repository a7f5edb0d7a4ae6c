import Foundation
import JWTKit
import NIOConcurrencyHelpers

/// Why a token was refused: said in `WWW-Authenticate` as
/// `error="invalid_token", error_description="…"` and in the JSON error.
public struct TokenRejection: Error, Equatable, Sendable, CustomStringConvertible {
    public var reason: String
    public var description: String { reason }

    public init(_ reason: String) {
        self.reason = reason
    }
}

/// Checks tokens against the keys of `TokenSettings`: the header's
/// algorithm must be one the keys verify, the signature must hold with one
/// of them, then `exp` (required), `nbf` (with leeway), `iss` and `aud`.
/// The keys can be read again (`reload`) while tokens are being checked.
public final class TokenVerifier: Sendable {
    public let settings: TokenSettings
    private let keys: NIOLockedValueBox<TokenKeys>

    /// Reads the key files; throws with the file and the reason if one
    /// cannot be used.
    public init(settings: TokenSettings) async throws {
        self.settings = settings
        keys = NIOLockedValueBox(try await TokenKeys.load(settings))
    }

    /// What the keys are, for the log.
    public var summary: String { keys.withLockedValue { $0.summary } }

    /// Reads the key files again. If one cannot be used, the keys in use
    /// stay and the error is thrown.
    @discardableResult
    public func reload() async throws -> String {
        let fresh = try await TokenKeys.load(settings)
        keys.withLockedValue { $0 = fresh }
        return fresh.summary
    }

    public func verify(_ token: String, now: Date = Date()) async -> Result<Grant, TokenRejection> {
        let current = keys.withLockedValue { $0 }
        guard let header = Self.header(of: token) else { return .failure(TokenRejection("malformed token")) }
        guard let algorithm = header.alg else { return .failure(TokenRejection("malformed token: no alg")) }
        guard current.algorithms.contains(algorithm) else {
            return .failure(
                TokenRejection(
                    "algorithm \(algorithm) is not accepted (this controller takes \(current.algorithms.sorted().joined(separator: ", ")))"))
        }
        let claims: TokenClaims
        do {
            claims = try await current.collection.verify(token, as: TokenClaims.self, iteratingKeys: true)
        } catch let error as JWTError where error.errorType == .signatureVerificationFailed {
            return .failure(TokenRejection("signature does not verify"))
        } catch let error as JWTError where error.errorType == .malformedToken {
            return .failure(TokenRejection("malformed token"))
        } catch {
            return .failure(TokenRejection("token not verified: \(error)"))
        }
        if let rejection = check(claims, now: now) { return .failure(rejection) }
        return .success(Grant(claims: claims, token: token))
    }

    func check(_ claims: TokenClaims, now: Date) -> TokenRejection? {
        let leeway = TimeInterval(settings.leewaySeconds)
        guard let exp = claims.exp else { return TokenRejection("token has no expiry (exp)") }
        if now.timeIntervalSince(exp.value) >= leeway { return TokenRejection("token expired") }
        if let nbf = claims.nbf, nbf.value.timeIntervalSince(now) > leeway {
            return TokenRejection("token not yet valid")
        }
        if let issuer = settings.issuer, claims.iss?.value != issuer {
            return TokenRejection("token issuer is not \(issuer)")
        }
        if let audience = settings.audience, !(claims.aud?.value.contains(audience) ?? false) {
            return TokenRejection("token audience does not include \(audience)")
        }
        return nil
    }

    struct Header: Decodable {
        var alg: String?
        var kid: String?
    }

    /// The token's header, if it is three base64url parts with a JSON head.
    static func header(of token: String) -> Header? {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let bytes = base64URLDecode(parts[0]) else { return nil }
        return try? JSONDecoder().decode(Header.self, from: bytes)
    }

    static func base64URLDecode(_ text: Substring) -> Data? {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        return Data(base64Encoded: base64)
    }
}
