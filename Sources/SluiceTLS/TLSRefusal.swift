import Foundation
import NIOSSL

/// Why a TLS handshake failed, in words an operator can act on, with
/// BoringSSL's own reason code beside them.
public struct TLSRefusal: Equatable, Sendable, CustomStringConvertible {
    /// BoringSSL's reason, e.g. `CERTIFICATE_VERIFY_FAILED`; empty if none.
    public var code: String
    /// What it means.
    public var reason: String

    public var description: String { code.isEmpty ? reason : "\(reason) (\(code))" }

    public init(code: String, reason: String) {
        self.code = code
        self.reason = reason
    }

    /// Reads the error a TLS handler raised. `server` says which side we
    /// are, so that the words name the peer rightly.
    public init(_ error: any Error, server: Bool) {
        let peer = server ? "the client" : "the server"
        guard let ssl = error as? NIOSSLError ?? (error is BoringSSLError ? .readInInvalidTLSState : nil) else {
            self.init(code: "", reason: "\(error)")
            return
        }
        if let boring = error as? BoringSSLError {
            let code = Self.codes(of: boring).last ?? ""
            self.init(code: code, reason: Self.explain(code, peer: peer))
            return
        }
        switch ssl {
        case .handshakeFailed(let boring):
            let code = Self.codes(of: boring).last ?? ""
            self.init(code: code, reason: Self.explain(code, peer: peer))
        case .uncleanShutdown:
            self.init(code: "", reason: "\(peer) closed the connection during the handshake")
        default:
            self.init(code: "", reason: "\(ssl)")
        }
    }

    /// The reason codes of BoringSSL's error stack: `error:…:OPENSSL_internal:CODE`.
    static func codes(of error: BoringSSLError) -> [String] {
        let stack: [BoringSSLInternalError]
        switch error {
        case .sslError(let s), .unknownError(let s), .invalidSNIName(let s), .failedToSetALPN(let s): stack = s
        default: return ["\(error)"]
        }
        return stack.map(code(of:))
    }

    /// `CODE` of `error:…:OPENSSL_internal:CODE at file:line`.
    static func code(of entry: BoringSSLInternalError) -> String {
        let text = "\(entry)"
        guard let range = text.range(of: "OPENSSL_internal:") else { return text }
        return String(text[range.upperBound...].prefix { $0 != " " })
    }

    static func explain(_ code: String, peer: String) -> String {
        switch code {
        case "PEER_DID_NOT_RETURN_A_CERTIFICATE":
            return "\(peer) sent no certificate"
        case "CERTIFICATE_VERIFY_FAILED":
            return "\(peer)'s certificate is not signed by a trusted CA, has expired, is not yet valid, or does not name this host"
        case "TLSV1_ALERT_UNKNOWN_CA":
            return "\(peer) does not trust the CA that signed our certificate"
        case "SSLV3_ALERT_CERTIFICATE_EXPIRED":
            return "\(peer) says our certificate has expired"
        case "SSLV3_ALERT_BAD_CERTIFICATE", "SSLV3_ALERT_CERTIFICATE_UNKNOWN", "TLSV1_ALERT_CERTIFICATE_REQUIRED",
            "TLSV1_CERTIFICATE_REQUIRED", "TLSV1_ALERT_ACCESS_DENIED":
            return "\(peer) refused our certificate"
        case "WRONG_VERSION_NUMBER", "HTTP_REQUEST", "HTTPS_PROXY_REQUEST", "UNKNOWN_PROTOCOL", "RECORD_TOO_LARGE",
            "UNEXPECTED_RECORD", "WRONG_SSL_VERSION":
            return "\(peer) does not speak TLS"
        case "UNSUPPORTED_PROTOCOL", "TLSV1_ALERT_PROTOCOL_VERSION":
            return "\(peer) offers no TLS version we take (1.2 or 1.3)"
        case "NO_SHARED_CIPHER", "SSLV3_ALERT_HANDSHAKE_FAILURE":
            return "\(peer) and we share no cipher"
        default:
            return code.isEmpty ? "TLS handshake failed" : "TLS handshake failed: \(code)"
        }
    }
}

/// The error a link's connect gives when its TLS handshake was refused.
public struct TLSRefused: Error, CustomStringConvertible {
    public var refusal: TLSRefusal
    public var description: String { "TLS handshake failed: \(refusal)" }
}
