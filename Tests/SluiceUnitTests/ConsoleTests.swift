import SluiceAuth
@testable import SluiceConsole
import SluiceProto
import Testing

@testable import SluiceController

/// The console's parts that need no browser: its sign-in codes, its base
/// path, its routes, its page and the apps list.
struct ConsoleTests {
    /// A random source that counts up, so that codes differ and are known.
    struct Counting: RandomNumberGenerator {
        var value: UInt64 = 0
        mutating func next() -> UInt64 {
            value &+= 0x0101_0101_0101_0101
            return value
        }
    }

    @Test func aSignInCodeGivesItsTokenOnceAndNotAfterItExpires() {
        var codes = LoginCodes()
        var random = Counting()
        let code = codes.issue(token: "token-a", now: 0, using: &random)
        #expect(code.count == 43)
        #expect(code.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x2D || $0 == 0x5F })
        #expect(codes.redeem("not-a-code", now: 1) == nil)
        #expect(codes.redeem(code, now: 1) == "token-a")
        #expect(codes.redeem(code, now: 2) == nil)

        let late = codes.issue(token: "token-b", now: 10, using: &random)
        #expect(late != code)
        #expect(codes.redeem(late, now: 10 + LoginCodes.lifetime) == nil)
        // An expired code was used up by the try, as any other.
        #expect(codes.count == 0)
    }

    @Test func codesAreBoundedAndTheOldestGoFirst() {
        var codes = LoginCodes()
        var random = Counting()
        let first = codes.issue(token: "first", now: 0, using: &random)
        var last = ""
        for index in 1...LoginCodes.limit { last = codes.issue(token: "t\(index)", now: Int64(index), using: &random) }
        #expect(codes.count == LoginCodes.limit)
        #expect(codes.redeem(first, now: 2000) == nil)
        #expect(codes.redeem(last, now: 2000) == "t\(LoginCodes.limit)")
    }

    @Test func base64URLMatchesRFC4648() {
        #expect(LoginCodes.base64URL(Array("f".utf8)) == "Zg")
        #expect(LoginCodes.base64URL(Array("fo".utf8)) == "Zm8")
        #expect(LoginCodes.base64URL(Array("foobar".utf8)) == "Zm9vYmFy")
        #expect(LoginCodes.base64URL([0xFB, 0xFF, 0xBF]) == "-_-_")
    }

    @Test func aBasePathIsCheckedAndStripped() throws {
        #expect(try ConsoleBasePath(parsing: "/") == .root)
        #expect(try ConsoleBasePath(parsing: "") == .root)
        let base = try ConsoleBasePath(parsing: "/ops/sluice/")
        #expect(base.prefix == "/ops/sluice")
        #expect(base.href == "/ops/sluice/")
        #expect(base.strip("/ops/sluice") == "/")
        #expect(base.strip("/ops/sluice/") == "/")
        #expect(base.strip("/ops/sluice?x=1") == "/?x=1")
        #expect(base.strip("/ops/sluice/apps/a/stream?access_token=t") == "/apps/a/stream?access_token=t")
        // Not the prefix: as it is (a proxy that strips it already did).
        #expect(base.strip("/apps") == "/apps")
        #expect(base.strip("/ops/sluicey/apps") == "/ops/sluicey/apps")
        #expect(ConsoleBasePath.root.strip("/apps") == "/apps")
        for bad in ["sluice", "/a b", "/a\"b", "/a//b", "/../x", "/x/./y", "/<script>", "/apps", "/ui/x", "/metrics"] {
            #expect(throws: ConsoleBasePath.Invalid.self, "\(bad)") { try ConsoleBasePath(parsing: bad) }
        }
    }

    @Test func theConsoleRoutes() {
        #expect(APIRoute.parse(method: "GET", uri: "/") == .success(.console))
        #expect(APIRoute.parse(method: "GET", uri: "/?x=1") == .success(.console))
        #expect(APIRoute.parse(method: "GET", uri: "/index.html") == .success(.console))
        #expect(APIRoute.parse(method: "GET", uri: "/ui/console.js") == .success(.consoleAsset("ui/console.js")))
        #expect(APIRoute.parse(method: "GET", uri: "/ui/console.css") == .success(.consoleAsset("ui/console.css")))
        #expect(APIRoute.parse(method: "GET", uri: "/ui/other.js").failureStatus == 404)
        #expect(APIRoute.parse(method: "POST", uri: "/ui/login-codes") == .success(.loginCode))
        #expect(APIRoute.parse(method: "GET", uri: "/ui/login-codes").failureStatus == 405)
        #expect(APIRoute.parse(method: "POST", uri: "/ui/login") == .success(.login))
        #expect(APIRoute.parse(method: "GET", uri: "/apps") == .success(.apps))
        #expect(APIRoute.parse(method: "POST", uri: "/apps").failureStatus == 405)
        // Who may: the page and the code trade are open; a code and the
        // apps list need a valid token (the list is filtered by it).
        #expect(APIRoute.console.resource == .open)
        #expect(APIRoute.consoleAsset("ui/console.js").resource == .open)
        #expect(APIRoute.login.resource == .open)
        #expect(APIRoute.loginCode.resource == .everyApp)
        #expect(APIRoute.apps.resource == .everyApp)
        #expect(!APIRoute.apps.takesQueryToken)
    }

    @Test func thePageNamesItsBaseAndRunsNoInlineScript() throws {
        let page = ConsoleAssets.page(base: try ConsoleBasePath(parsing: "/sluice"))
        #expect(page.contains(#"<base href="/sluice/">"#))
        #expect(page.contains(#"<script src="ui/console.js" defer></script>"#))
        // Every <script> has a src: nothing runs inline.
        #expect(page.split(separator: "<script").dropFirst().allSatisfy { $0.hasPrefix(" src=") })
        #expect(!page.contains(" on"))
        let policy = try #require(ConsoleAssets.securityHeaders.first { $0.0 == "Content-Security-Policy" }?.1)
        #expect(policy.contains("script-src 'self'"))
        #expect(!policy.contains("unsafe"))
        #expect(ConsoleAssets.asset("ui/console.js")?.contentType.hasPrefix("text/javascript") == true)
        #expect(ConsoleAssets.asset("ui/console.css")?.contentType.hasPrefix("text/css") == true)
        #expect(ConsoleAssets.asset("ui/../Package.swift") == nil)
        // The script writes lines as text: no innerHTML or its cousins anywhere.
        let script = try #require(ConsoleAssets.asset("ui/console.js")).body
        for sink in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"] {
            #expect(!script.contains(sink), "\(sink)")
        }
    }

    @Test func theAppsListSumsWhatTheServersHold() {
        var web = Sluice_V1_SourceMeta()
        web.sourceID = "web \"quoted\""
        web.count = 5
        web.expired = 2
        web.dropped = 7
        web.newestTimestamp = 1_700_000_000_000_000_000
        var api = Sluice_V1_SourceMeta()
        api.sourceID = "api"
        api.count = 1
        #expect(
            ConsoleEndpoints.appsJSON([web, api], partial: ["z2"])
                == #"{"apps":[{"app":"api","lines":1,"held":1,"expired":0,"dropped":0,"newest":"0"},{"app":"web \"quoted\"","lines":7,"held":5,"expired":2,"dropped":7,"newest":"1700000000000000000"}],"partial":["z2"]}"#)
        #expect(ConsoleEndpoints.appsJSON([], partial: []) == #"{"apps":[],"partial":[]}"#)
    }
}

extension ConsoleTests {
    @Test func aDrainsStateIsEveryServersAndItsCountsTheirSum() {
        func status(up: Bool, sent: UInt64, dropped: UInt64, queued: UInt64) -> Sluice_V1_DrainStatus {
            var status = Sluice_V1_DrainStatus()
            status.id = "00000000000000a1"
            status.app = "web"
            status.up = up
            status.sent = sent
            status.dropped = dropped
            status.queued = queued
            return status
        }
        var state = Egress.DrainState(app: "web")
        state.add(status(up: true, sent: 10, dropped: 1, queued: 0))
        #expect(state.up)
        state.add(status(up: false, sent: 5, dropped: 2, queued: 7))
        #expect(state == Egress.DrainState(app: "web", up: false, sent: 15, dropped: 3, queued: 7, servers: 2))
        #expect(
            ConsoleEndpoints.drainStatusJSON(["00000000000000a1": state], partial: [])
                == #"{"drains":[{"id":"00000000000000a1","state":"retrying","sent":15,"dropped":3,"queued":7,"servers":2}],"partial":[]}"#)
        #expect(APIRoute.parse(method: "GET", uri: "/apps/web/drain-status") == .success(.drainStatus(app: "web")))
        #expect(APIRoute.parse(method: "GET", uri: "/cluster") == .success(.cluster))
        #expect(
            ConsoleEndpoints.clusterJSON(zone: "z1", zones: ["z1", "z2"], controllers: ["z1": 2], partial: ["z2"])
                == #"{"zone":"z1","zones":[{"zone":"z1","controllers":2},{"zone":"z2","controllers":0}],"partial":["z2"]}"#)
        #expect(APIRoute.drainStatus(app: "web").resource == .app("web"))
    }
}

extension Result where Success == APIRoute, Failure == APIRoute.Failure {
    fileprivate var failureStatus: Int? {
        if case .failure(let failure) = self { return failure.status }
        return nil
    }
}
