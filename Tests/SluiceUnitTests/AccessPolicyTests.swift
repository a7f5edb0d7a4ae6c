import SluiceAuth
import Testing

@testable import SluiceController

/// The access rules, the external check's cache, and how a route names
/// its token and answers a refusal: plain logic.
@Suite struct AccessPolicyTests {
    static let admin = Grant(admin: true, apps: [], token: "t")
    static let appA = Grant(admin: false, apps: ["a"], token: "t")

    @Test func adminsReadEverythingAndAppTokensTheirOwnApps() {
        #expect(AccessPolicy.decide(Self.admin, .app("z")) == .allow)
        #expect(AccessPolicy.decide(Self.admin, .firehose) == .allow)
        #expect(AccessPolicy.decide(Self.admin, .appAdmin("z")) == .allow)
        #expect(AccessPolicy.decide(Self.appA, .app("a")) == .allow)
        #expect(AccessPolicy.decide(Self.appA, .app("b")) == .askExternally(app: "b"))
        #expect(AccessPolicy.decide(Self.appA, .everyApp) == .allow)
        guard case .forbidden = AccessPolicy.decide(Self.appA, .firehose) else {
            Issue.record("the firehose is an admin's")
            return
        }
        guard case .forbidden = AccessPolicy.decide(Self.appA, .appAdmin("a")) else {
            Issue.record("an app's limit is an admin's to change")
            return
        }
        #expect(AccessPolicy.decide(Self.appA, .appAdmin("b")) == .askExternally(app: "b"))
    }

    @Test func anyOfTheThreeAdminScopesMakesAnAdmin() {
        for scope in ["sluice.admin", "logs.admin", "doppler.firehose"] {
            #expect(Grant(claims: TokenClaims(exp: nil, scope: ["openid", scope]), token: "t").admin, "\(scope)")
        }
        #expect(!Grant(claims: TokenClaims(exp: nil, scope: ["cloud_controller.read"]), token: "t").admin)
        #expect(Grant(claims: TokenClaims(exp: nil, appIDs: ["x", "y"]), token: "t").apps == ["x", "y"])
    }

    @Test func theCacheKeepsYesAndNoForItsLifetimePerTokenAndApp() {
        var cache = AccessCache(lifetimeNanos: 5_000, capacity: 3)
        cache.remember(token: "t1", app: "a", allowed: true, now: 0)
        cache.remember(token: "t1", app: "b", allowed: false, now: 0)
        #expect(cache.answer(token: "t1", app: "a", now: 4_999) == true)
        #expect(cache.answer(token: "t1", app: "b", now: 4_999) == false)
        #expect(cache.answer(token: "t2", app: "a", now: 1) == nil)
        #expect(cache.answer(token: "t1", app: "a", now: 5_000) == nil)
        // Full: the expired go first.
        cache.remember(token: "t1", app: "c", allowed: true, now: 1)
        cache.remember(token: "t1", app: "d", allowed: true, now: 6_000)
        #expect(cache.count == 1)
    }

    @Test func theTokenComesFromTheHeaderOrForAStreamTheQuery() {
        #expect(APIRoute.token(authorization: ["Bearer abc"], uri: "/x", takesQueryToken: false) == "abc")
        #expect(APIRoute.token(authorization: ["bearer abc"], uri: "/x", takesQueryToken: false) == "abc")
        #expect(APIRoute.token(authorization: ["Basic abc"], uri: "/x?access_token=q", takesQueryToken: false) == nil)
        #expect(APIRoute.token(authorization: [], uri: "/apps/a/stream?access_token=q%2B1", takesQueryToken: true) == "q+1")
        #expect(APIRoute.token(authorization: ["Bearer h"], uri: "/apps/a/stream?access_token=q", takesQueryToken: true) == "h")
        guard case .success(let stream) = APIRoute.parse(method: "GET", uri: "/apps/a/stream?access_token=q") else {
            Issue.record("a query token is not part of the route")
            return
        }
        #expect(stream.takesQueryToken)
        #expect(stream.resource == .app("a"))
        #expect(APIRoute.health.resource == .open)
        #expect(APIRoute.listDrains(app: nil).resource == .everyApp)
        #expect(APIRoute.setLogRateLimit(app: "a").resource == .appAdmin("a"))
        #expect(!APIRoute.recentLogs(app: "a", limit: 1).takesQueryToken)
    }

    @Test func refusalsAreAnsweredAsLoggregatorsUsersKnowThem() {
        let missing = APIRoute.failure(for: .unauthorized(reason: nil))
        #expect(missing?.status == 401)
        #expect(missing?.challenge == #"Bearer realm="sluice""#)
        let expired = APIRoute.failure(for: .unauthorized(reason: #"token "x" expired"#))
        #expect(expired?.challenge == #"Bearer realm="sluice", error="invalid_token", error_description="token \"x\" expired""#)
        #expect(APIRoute.failure(for: .notFound) == .init(status: 404, error: "not_found", message: "resource not found"))
        #expect(APIRoute.failure(for: .forbidden("no"))?.status == 403)
        #expect(APIRoute.failure(for: .unavailable("down"))?.status == 503)
        #expect(APIRoute.failure(for: .allowed(Self.admin)) == nil)
    }
}
