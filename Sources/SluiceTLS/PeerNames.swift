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

    static func address(_ bytes: [UInt8]) -> String {
        if bytes.count == 4 { return bytes.map(String.init).joined(separator: ".") }
        guard bytes.count == 16 else { return bytes.map { String($0, radix: 16) }.joined(separator: ":") }
        return stride(from: 0, to: 16, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }
            .joined(separator: ":")
    }
}
