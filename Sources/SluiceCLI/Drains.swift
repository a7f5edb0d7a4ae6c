import Foundation
import NIOCore
import NIOHTTP1
import SluiceWire

/// `sluice drains`: adds, lists and removes drain bindings through a
/// controller's API. URLs come back from the API with credentials hidden.
public struct Drains: Sendable {
    public var base: HTTPURL
    /// Sent as `Authorization: Bearer`.
    public var token: String?

    /// PEM CA certificates for an `https://` controller (nil: the system's).
    public var trustRoots: String? = nil

    public init(base: HTTPURL, token: String? = nil) {
        self.base = base
        self.token = token
    }

    var authorization: [(String, String)] { HTTPClient.bearer(token) }

    public struct Binding: Decodable, Equatable, Sendable {
        public var id: String
        public var app: String
        public var name: String
        public var url: String
        public var createdAt: String

        enum CodingKeys: String, CodingKey {
            case id, app, name, url
            case createdAt = "created_at"
        }
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    struct List: Decodable {
        var drains: [Binding]
    }

    public func add(app: String, url: String, name: String?) async throws -> Binding {
        var request: [String: String] = ["url": url]
        if let name { request["name"] = name }
        let body = try JSONEncoder().encode(request)
        let response = try await HTTPClient.request(
            .POST, base.with(path: "/apps/\(pathEscape(app))/drains"),
            headers: [("Content-Type", "application/json")] + authorization, body: ByteBuffer(bytes: body),
            trustRoots: trustRoots)
        try check(response, expect: 201, app: app)
        return try JSONDecoder().decode(Binding.self, from: Data(response.body.readableBytesView))
    }

    public func list(app: String?) async throws -> [Binding] {
        let path = app.map { "/apps/\(pathEscape($0))/drains" } ?? "/drains"
        let response = try await HTTPClient.get(base.with(path: path), headers: authorization, trustRoots: trustRoots)
        try check(response, expect: 200, app: app)
        return try JSONDecoder().decode(List.self, from: Data(response.body.readableBytesView)).drains
    }

    public func remove(app: String, drain: String) async throws {
        let response = try await HTTPClient.request(
            .DELETE, base.with(path: "/apps/\(pathEscape(app))/drains/\(pathEscape(drain))"), headers: authorization,
            trustRoots: trustRoots)
        try check(response, expect: 204, app: app)
    }

    /// Bindings as a table: app, name, id, URL.
    public static func table(_ bindings: [Binding]) -> [String] {
        let rows = [["app", "name", "id", "url"]] + bindings.map { [$0.app, $0.name, $0.id, $0.url] }
        let widths = (0..<3).map { column in rows.map { $0[column].count }.max() ?? 0 }
        return rows.map { row in
            (0..<3).map { row[$0].padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: "   ")
                + "   " + row[3]
        }
    }

    func check(_ response: HTTPClient.Response, expect status: Int, app: String?) throws {
        guard Int(response.status.code) != status else { return }
        if let advice = AccessAdvice.text(for: response, app: app, sentToken: token != nil) {
            throw Failure(description: advice)
        }
        let message = AccessAdvice.apiMessage(response.body) ?? ""
        throw Failure(description: "\(response.status.code) \(response.status.reasonPhrase): \(message)")
    }
}
