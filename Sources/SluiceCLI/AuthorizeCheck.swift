import NIOCore
import NIOHTTP1
import SluiceAuth

/// The external check a controller asks about a valid token that names no
/// such app, as Cloud Foundry's traffic controller asks the Cloud
/// Controller: `GET` the URL with the caller's token. A 2xx is yes; 401,
/// 403, 404 or any other 4xx is no; a 5xx, no answer within the timeout or
/// no connection cannot be taken for either, and the request gets 503.
public enum AuthorizeCheck {
    public struct Failed: Error, CustomStringConvertible {
        public var description: String
    }

    /// Over `http://` or `https://`; an https server's certificate is
    /// checked against the system's roots, or `trustRoots` (a PEM file).
    public static func http(timeout: TimeAmount = .seconds(5), trustRoots: String? = nil) -> Authorizer.ExternalCheck {
        { url, token in
            let target = try HTTPURL(parsing: url)
            let response = try await HTTPClient.request(
                .GET, target, headers: HTTPClient.bearer(token), timeout: timeout, trustRoots: trustRoots)
            switch response.status.code {
            case 200..<300: return true
            case 500...: throw Failed(description: "\(url) answered \(response.status.code)")
            default: return false
            }
        }
    }
}
