import SluiceWire
import Testing

@testable import SluiceController

/// `APIRoute.parse`: the controller's HTTP routes and their errors.
@Suite struct APIRouteTests {
    static let app256 = String(repeating: "a", count: 256)
    static let app257 = String(repeating: "a", count: 257)

    static let routes: [(String, APIRoute)] = [
        ("/healthz", .health),
        ("/healthz?verbose=1", .health),
        ("/metrics", .metrics),
        ("/apps/x/recentlogs", .recentLogs(app: "x", limit: 1000)),
        ("/apps/x/recentlogs?limit=5", .recentLogs(app: "x", limit: 5)),
        ("/apps/x/recentlogs?limit=1", .recentLogs(app: "x", limit: 1)),
        ("/apps/x/recentlogs?limit=100000", .recentLogs(app: "x", limit: 100_000)),
        ("/apps/x/recentlogs?foo=bar&limit=7&baz", .recentLogs(app: "x", limit: 7)),
        ("/apps/x/stream", .stream(app: "x", json: false)),
        ("/apps/x/stream?format=json", .stream(app: "x", json: true)),
        ("/apps/x/stream?format=protobuf", .stream(app: "x", json: false)),
        ("/apps/my%20app/stream", .stream(app: "my app", json: false)),
        ("/apps/a+b/stream", .stream(app: "a+b", json: false)),
        ("/apps/%C3%A9t%C3%A9/recentlogs", .recentLogs(app: "été", limit: 1000)),
        ("/apps/%c3%a9/recentlogs", .recentLogs(app: "é", limit: 1000)),
        ("/apps/6f1a-4b2c.prod_1~/stream", .stream(app: "6f1a-4b2c.prod_1~", json: false)),
        ("/apps/\(app256)/recentlogs", .recentLogs(app: app256, limit: 1000)),
        ("/drains", .listDrains(app: nil)),
        ("/apps/x/drains", .listDrains(app: "x")),
        ("/apps/my%20app/drains", .listDrains(app: "my app")),
        ("/firehose/nozzle", .firehose(subscription: "nozzle", json: false)),
        ("/firehose/my%20nozzle?format=json&access_token=t", .firehose(subscription: "my nozzle", json: true)),
        ("/apps/x/log-rate-limit", .logRateLimit(app: "x")),
    ]

    @Test(arguments: routes)
    func parses(uri: String, route: APIRoute) {
        let parsed = APIRoute.parse(method: "GET", uri: uri)
        #expect(parsed == .success(route), "\(uri)")
    }

    @Test func drainRoutesTakeTheirMethods() {
        #expect(APIRoute.parse(method: "POST", uri: "/apps/x/drains") == .success(.addDrain(app: "x")))
        #expect(
            APIRoute.parse(method: "DELETE", uri: "/apps/x/drains/abc") == .success(.removeDrain(app: "x", drain: "abc")))
        #expect(
            APIRoute.parse(method: "DELETE", uri: "/apps/x/drains/my%20drain")
                == .success(.removeDrain(app: "x", drain: "my drain")))
    }

    @Test func drainNames() {
        #expect(APIRoute.drainName(nil) == .success(nil))
        #expect(APIRoute.drainName("papertrail") == .success("papertrail"))
        for bad in ["", "a/b", "a\nb", String(repeating: "n", count: 129)] {
            guard case .failure(let failure) = APIRoute.drainName(bad) else {
                Issue.record("drain name \(bad.debugDescription) was accepted")
                continue
            }
            #expect(failure.status == 422)
        }
    }

    static let failures: [Expected] = [
        .init("GET", "/apps/x/recentlogs?limit=0", 400, "bad_limit"),
        .init("GET", "/apps/x/recentlogs?limit=-1", 400, "bad_limit"),
        .init("GET", "/apps/x/recentlogs?limit=abc", 400, "bad_limit"),
        .init("GET", "/apps/x/recentlogs?limit=100001", 400, "bad_limit"),
        .init("GET", "/apps/x/recentlogs?limit=", 400, "bad_limit"),
        .init("GET", "/apps/x/recentlogs?limit=1.5", 400, "bad_limit"),
        .init("GET", "/apps/x/recentlogs?limit=99999999999999999999999", 400, "bad_limit"),
        .init("GET", "/apps/x/stream?format=xml", 400, "bad_format"),
        .init("GET", "/apps/x/stream?format=", 400, "bad_format"),
        .init("GET", "/apps/a%2Fb/stream", 400, "bad_app_id"),
        .init("GET", "/apps/a%2fb/recentlogs", 400, "bad_app_id"),
        .init("GET", "/apps/%G1/stream", 400, "bad_app_id"),
        .init("GET", "/apps/%1/stream", 400, "bad_app_id"),
        .init("GET", "/apps/abc%/stream", 400, "bad_app_id"),
        .init("GET", "/apps/%FF/stream", 400, "bad_app_id"),
        .init("GET", "/apps/%00/stream", 400, "bad_app_id"),
        .init("GET", "/apps/a%0Ab/stream", 400, "bad_app_id"),
        .init("GET", "/apps/a%7Fb/stream", 400, "bad_app_id"),
        .init("GET", "/apps//recentlogs", 400, "bad_app_id"),
        .init("GET", "/apps//stream", 400, "bad_app_id"),
        .init("GET", "/apps/\(app257)/recentlogs", 400, "bad_app_id"),
        // `/` is the web console's page and `/apps` its list (ConsoleTests).
        .init("GET", "", 404, "not_found"),
        .init("POST", "/", 405, "method_not_allowed"),
        .init("DELETE", "/apps", 405, "method_not_allowed"),
        .init("GET", "/apps/x", 404, "not_found"),
        .init("GET", "/apps/x/logs", 404, "not_found"),
        .init("GET", "/apps/x/recentlogs/more", 404, "not_found"),
        .init("GET", "/apps/x/y/stream", 404, "not_found"),
        .init("GET", "/healthz/", 404, "not_found"),
        .init("GET", "/HEALTHZ", 404, "not_found"),
        .init("GET", "/firehose/sub?format=xml", 400, "bad_format"),
        .init("GET", "/firehose/", 400, "bad_subscription_id"),
        .init("GET", "/firehose", 404, "not_found"),
        .init("POST", "/healthz", 405, "method_not_allowed"),
        .init("POST", "/metrics", 405, "method_not_allowed"),
        .init("PUT", "/apps/x/recentlogs", 405, "method_not_allowed"),
        .init("DELETE", "/apps/x/stream", 405, "method_not_allowed"),
        .init("get", "/healthz", 405, "method_not_allowed"),
        .init("POST", "/nowhere", 404, "not_found"),
        .init("POST", "/drains", 405, "method_not_allowed"),
        .init("PUT", "/apps/x/drains", 405, "method_not_allowed"),
        .init("GET", "/apps/x/drains/abc", 405, "method_not_allowed"),
        .init("POST", "/apps/x/drains/abc", 405, "method_not_allowed"),
        .init("DELETE", "/apps/x/drains", 405, "method_not_allowed"),
        .init("DELETE", "/apps/x/drains/", 400, "bad_drain"),
        .init("DELETE", "/apps/x/drains/%FF", 400, "bad_drain"),
        .init("POST", "/apps/a%2Fb/drains", 400, "bad_app_id"),
        .init("GET", "/apps/x/drains/a/b", 404, "not_found"),
    ]

    struct Expected: Sendable, CustomTestStringConvertible {
        var method: String
        var uri: String
        var status: Int
        var error: String
        init(_ method: String, _ uri: String, _ status: Int, _ error: String) {
            self.method = method
            self.uri = uri
            self.status = status
            self.error = error
        }
        var testDescription: String { "\(method) \(uri) → \(status) \(error)" }
    }

    @Test(arguments: failures)
    func fails(expected: Expected) {
        let (method, uri, status, error) = (expected.method, expected.uri, expected.status, expected.error)
        guard case .failure(let failure) = APIRoute.parse(method: method, uri: uri) else {
            Issue.record("\(method) \(uri) parsed as \(APIRoute.parse(method: method, uri: uri))")
            return
        }
        #expect(failure.status == status, "\(method) \(uri)")
        #expect(failure.error == error, "\(method) \(uri)")
        #expect(!failure.message.isEmpty)
    }

    @Test func appIDLengthCountsUTF8Bytes() {
        // 128 two-byte characters are 256 bytes: fine; one more byte is not.
        let twoByte = String(repeating: "é", count: 128)
        #expect(APIRoute.appID(Substring(twoByte)) == .success(twoByte))
        let encoded = String(repeating: "%C3%A9", count: 128) + "a"
        guard case .failure(let failure) = APIRoute.parse(method: "GET", uri: "/apps/\(encoded)/stream") else {
            Issue.record("a 257-byte app id was accepted")
            return
        }
        #expect(failure.error == "bad_app_id")
        #expect(failure.status == 400)
    }

    @Test func percentDecode() {
        #expect(URIQuery.percentDecode("a%20b") == "a b")
        #expect(URIQuery.percentDecode("a+b") == "a+b")
        #expect(URIQuery.percentDecode("a+b", plusIsSpace: true) == "a b")
        #expect(URIQuery.percentDecode("%2B", plusIsSpace: true) == "+")
        #expect(URIQuery.percentDecode("%") == nil)
        #expect(URIQuery.percentDecode("%4") == nil)
        #expect(URIQuery.percentDecode("%zz") == nil)
        #expect(URIQuery.percentDecode("%C3") == nil)
        #expect(URIQuery.percentDecode("") == "")
    }

    @Test func queryValuesArePercentDecoded() {
        #expect(APIRoute.parse(method: "GET", uri: "/apps/x/recentlogs?limit=%35") == .success(.recentLogs(app: "x", limit: 5)))
        #expect(APIRoute.parse(method: "GET", uri: "/apps/x/stream?format=%6Aso%6E") == .success(.stream(app: "x", json: true)))
        let split = URIQuery.split("/p?a=1&b=x%20y&c=q+r&d")
        #expect(split.path == "/p")
        #expect(split.query == ["a": "1", "b": "x y", "c": "q r", "d": ""])
    }
}
