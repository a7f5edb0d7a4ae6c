import Foundation
import NIOSSL
import SwiftASN1
import X509

/// The names a certificate carries: its DNS and IP subject alternative
/// names, then its subject's common name. What `--tls-allowed-name` is
/// matched against, and what the logs show of a peer.
public enum PeerNames {
    public static func of(_ certificate: NIOSSLCertificate) -> [String] {
        guard let bytes = try? certificate.toDERBytes(), let parsed = try? Certificate(derEncoded: bytes) else {
            return []
        }
        return of(parsed)
    }

    public static func of(_ certificate: Certificate) -> [String] {
        var names: [String] = []
        if let alternatives = try? certificate.extensions.subjectAlternativeNames {
            for name in alternatives {
                switch name {
                case .dnsName(let dns): names.append(dns)
                case .ipAddress(let octets): names.append(address(Array(octets.bytes)))
                default: break
                }
            }
        }
        for rdn in certificate.subject {
            for attribute in rdn where attribute.type == .RDNAttributeType.commonName {
                let text = "\(attribute.value)"
                if !names.contains(text) { names.append(text) }
            }
        }
        return names
    }

    /// Whether `host` is an IP address (v4 or v6) rather than a DNS name.
    public static func isAddress(_ host: String) -> Bool {
        DevelopmentCA.addressBytes(host) != nil
    }

    /// Whether `name` (from a certificate) is one of `wanted`: DNS names
    /// without regard to case, addresses as written by `address`.
    public static func matches(_ name: String, _ wanted: [String]) -> Bool {
        wanted.contains { $0.caseInsensitiveCompare(name) == .orderedSame || canonical($0) == name }
    }

    /// An address as `address(_:)` writes it (`::1`, not `0:0:…:1`); other
    /// text as it is.
    static func canonical(_ text: String) -> String {
        DevelopmentCA.addressBytes(text).map(address) ?? text
    }

    static func address(_ bytes: [UInt8]) -> String {
        let family: Int32
        switch bytes.count {
        case 4: family = AF_INET
        case 16: family = AF_INET6
        default: return bytes.map { String($0, radix: 16) }.joined(separator: ":")
        }
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let ok = bytes.withUnsafeBytes { raw in inet_ntop(family, raw.baseAddress, &text, socklen_t(text.count)) != nil }
        guard ok else { return bytes.map { String($0, radix: 16) }.joined(separator: ":") }
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
