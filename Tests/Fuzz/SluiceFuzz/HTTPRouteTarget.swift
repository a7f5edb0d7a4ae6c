@testable import SluiceController
import SluiceWire

/// The controller's HTTP API: the method (from the first byte) and the
/// request target (the rest) parsed to a route, and the bearer token found
/// in a header or the query.
enum HTTPRouteTarget: FuzzTarget {
    static let name = "http-route"
    static let methods = ["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS", "get"]

    static func run(_ input: UnsafeRawBufferPointer) {
        guard let first = input.first else { return }
        let method = methods[Int(first) % methods.count]
        let uri = String(decoding: input.dropFirst(), as: UTF8.self)
        let route = APIRoute.parse(method: method, uri: uri)
        _ = APIRoute.token(authorization: [uri], uri: uri, takesQueryToken: true)
        _ = APIRoute.drainName(uri)
        guard case .success(let parsed) = route else { return }
        _ = parsed.resource
        _ = parsed.stream
    }
}
