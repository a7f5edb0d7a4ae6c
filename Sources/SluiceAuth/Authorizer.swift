import Foundation
import NIOConcurrencyHelpers
import SluiceWire

/// A controller's access check for one request: the token verified, the
/// rules applied, and, for a valid token that names no such app, the
/// external check (`--authorize-url`) asked and its answer kept briefly.
public final class Authorizer: Sendable {
    /// Asks the external check with the caller's token: true for a 2xx,
    /// false for any other answer; throws when it cannot be asked.
    public typealias ExternalCheck = @Sendable (_ url: String, _ token: String) async throws -> Bool

    public let verifier: TokenVerifier
    private let check: ExternalCheck?
    private let cache: NIOLockedValueBox<AccessCache>

    public init(verifier: TokenVerifier, check: ExternalCheck? = nil) {
        self.verifier = verifier
        self.check = verifier.settings.authorizeURL == nil ? nil : check
        cache = NIOLockedValueBox(AccessCache(lifetimeNanos: Int64(verifier.settings.authorizeCacheSeconds) * 1_000_000_000))
    }

    public func authorize(token: String?, resource: Resource) async -> AccessOutcome {
        if resource == .open { return .allowed(Grant(admin: false, apps: [], token: "")) }
        guard let token, !token.isEmpty else { return .unauthorized(reason: nil) }
        let grant: Grant
        switch await verifier.verify(token) {
        case .failure(let rejection): return .unauthorized(reason: rejection.reason)
        case .success(let verified): grant = verified
        }
        // Each app the token does not name is asked of the external check
        // in turn (once each: an app it allows is named from then on).
        var widened = grant
        var asked: Set<String> = []
        while true {
            switch AccessPolicy.decide(widened, resource) {
            case .allow: return .allowed(widened)
            case .forbidden(let message): return .forbidden(message)
            case .askExternally(let app):
                guard let check, let template = verifier.settings.authorizeURL, asked.insert(app).inserted else {
                    return .notFound
                }
                let now = WallClock.nowNanos()
                let known = cache.withLockedValue { $0.answer(token: token, app: app, now: now) }
                let allowed: Bool
                if let known {
                    allowed = known
                } else {
                    do {
                        allowed = try await check(Self.url(template, app: app), token)
                    } catch {
                        return .unavailable("the authorization service (--authorize-url) could not be asked: \(error)")
                    }
                    cache.withLockedValue { $0.remember(token: token, app: app, allowed: allowed, now: WallClock.nowNanos()) }
                }
                guard allowed else { return .notFound }
                // Named to this token now: the rules say the rest (an admin's
                // setting stays an admin's).
                widened.apps.insert(app)
            }
        }
    }

    /// The external check's URL for an app: `{app}` replaced, percent-encoded.
    public static func url(_ template: String, app: String) -> String {
        template.replacingOccurrences(of: "{app}", with: URIQuery.percentEncode(app))
    }

    /// Answers kept now (for tests and status).
    public var cachedAnswers: Int { cache.withLockedValue { $0.count } }
}
