import Crypto
import Foundation
import SwiftASN1
import X509

/// A certificate authority for development and tests: `sluice certs` and
/// `sluice up --tls`. EC P-256 keys, certificates usable both as server and
/// as client (every Sluice part is both). Not for production: there, use the
/// platform's own CA (cert-manager, BOSH's credhub, Vault).
public struct DevelopmentCA: Sendable {
    public let certificate: Certificate
    private let key: P256.Signing.PrivateKey

    /// One certificate and its key, as PEM.
    public struct Issued: Sendable {
        public var certificatePEM: String
        public var keyPEM: String
        public var names: [String]
    }

    public struct Invalid: Error, CustomStringConvertible {
        public var description: String
    }

    /// A new CA valid from an hour ago for `days`.
    public init(name: String = "Sluice development CA", days: Int = 365 * 3, now: Date = Date()) throws {
        let key = P256.Signing.PrivateKey()
        let subject = try DistinguishedName {
            OrganizationName("Sluice")
            CommonName(name)
        }
        let publicKey = Certificate.PublicKey(key.publicKey)
        self.key = key
        self.certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: publicKey,
            notValidBefore: now.addingTimeInterval(-3600), notValidAfter: now.addingTimeInterval(Double(days) * 86400),
            issuer: subject, subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: publicKey)
            },
            issuerPrivateKey: Certificate.PrivateKey(key))
    }

    /// A CA made before, from its PEM certificate and key.
    public init(certificatePEM: String, keyPEM: String) throws {
        do {
            self.certificate = try Certificate(pemEncoded: certificatePEM)
            self.key = try P256.Signing.PrivateKey(pemRepresentation: keyPEM)
        } catch {
            throw Invalid(description: "not a CA certificate and P-256 key made by sluice certs: \(error)")
        }
        guard Certificate.PublicKey(key.publicKey) == certificate.publicKey else {
            throw Invalid(description: "the CA key is not the key of the CA certificate")
        }
    }

    public var certificatePEM: String { (try? certificate.serializeAsPEM().pemString) ?? "" }
    public var keyPEM: String { key.pemRepresentation }

    /// A certificate for `names`: each an IP address (an IP SAN) or a DNS
    /// name; the first is also its common name. Valid from `from` (an hour
    /// ago by default) for `days`.
    public func issue(names: [String], days: Int = 365, from: Date? = nil, now: Date = Date()) throws -> Issued {
        guard let first = names.first else { throw Invalid(description: "a certificate needs at least one name") }
        let key = P256.Signing.PrivateKey()
        let publicKey = Certificate.PublicKey(key.publicKey)
        let start = from ?? now.addingTimeInterval(-3600)
        let alternatives = names.map { name -> GeneralName in
            if let bytes = Self.addressBytes(name) { return .ipAddress(ASN1OctetString(contentBytes: ArraySlice(bytes))) }
            return .dnsName(name)
        }
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: publicKey,
            notValidBefore: start, notValidAfter: start.addingTimeInterval(Double(days) * 86400),
            issuer: self.certificate.subject,
            subject: try DistinguishedName {
                OrganizationName("Sluice")
                CommonName(first)
            },
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true, keyEncipherment: true))
                try ExtendedKeyUsage([.serverAuth, .clientAuth])
                SubjectAlternativeNames(alternatives)
                SubjectKeyIdentifier(hash: publicKey)
                AuthorityKeyIdentifier(
                    keyIdentifier: try self.certificate.extensions.subjectKeyIdentifier?.keyIdentifier)
            },
            issuerPrivateKey: Certificate.PrivateKey(self.key))
        return Issued(certificatePEM: try certificate.serializeAsPEM().pemString, keyPEM: key.pemRepresentation, names: names)
    }

    /// The 4 or 16 bytes of an IP address, nil for anything else.
    static func addressBytes(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }
}
