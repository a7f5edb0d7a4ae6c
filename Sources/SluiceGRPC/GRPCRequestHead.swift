import NIOHPACK

/// A gRPC call's request headers, checked: the method it calls and what
/// Sluice reads of its metadata.
public struct GRPCRequestHead: Sendable, Equatable {
    /// `/package.Service/Method`.
    public var path: String
    /// The `authorization` metadata, if any (a bearer token).
    public var authorization: String?
    /// Every header, for what a method reads itself.
    public var headers: HPACKHeaders

    /// Why a request's headers are refused, before any method sees it.
    public enum Refusal: Error, Equatable {
        /// Not gRPC at all: answered with this HTTP status (405, 415).
        case http(status: Int, reason: String)
        /// gRPC, refused with this status (trailers only).
        case grpc(GRPCStatus)
    }

    /// Checks the headers as the gRPC over HTTP/2 protocol asks: POST, a
    /// content type `application/grpc…`, no compression Sluice cannot read.
    public static func parse(_ headers: HPACKHeaders) -> Result<GRPCRequestHead, Refusal> {
        guard let method = headers.first(name: ":method"), method == "POST" else {
            return .failure(.http(status: 405, reason: "gRPC takes POST"))
        }
        guard let contentType = headers.first(name: "content-type"),
            contentType == "application/grpc" || contentType.hasPrefix("application/grpc+")
                || contentType.hasPrefix("application/grpc;")
        else {
            return .failure(.http(status: 415, reason: "a gRPC request's content-type is application/grpc"))
        }
        guard let path = headers.first(name: ":path"), path.hasPrefix("/") else {
            return .failure(.grpc(GRPCStatus(.unimplemented, "no method path")))
        }
        if contentType.hasPrefix("application/grpc+"), !contentType.hasPrefix("application/grpc+proto") {
            return .failure(.grpc(GRPCStatus(.internal, "only protobuf messages are taken, not \(contentType)")))
        }
        if let encoding = headers.first(name: "grpc-encoding"), encoding != "identity" {
            return .failure(
                .grpc(GRPCStatus(.unimplemented, "grpc-encoding \(encoding) is not taken: Sluice reads identity only")))
        }
        return .success(GRPCRequestHead(path: path, authorization: headers.first(name: "authorization"), headers: headers))
    }
}
