import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// A CA, and a certificate for `localhost` and 127.0.0.1 that it signed, made
/// with the openssl command line (EC P-256 keys: quick to make).
struct TestCertificates: Sendable {
    let caPath: String
    let certPath: String
    let keyPath: String

    static func make(in dir: URL) throws -> TestCertificates {
        guard let openssl = findProgram("openssl") else { throw DrainPeerError("openssl is not installed") }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        func path(_ name: String) -> String { dir.appendingPathComponent(name).path }
        let config = path("openssl.cnf")
        // Our own config, so that the system's openssl.cnf adds no extensions of its own.
        try """
            [req]
            distinguished_name = dn
            prompt = no
            [dn]
            CN = unused
            [ca_ext]
            basicConstraints = critical,CA:TRUE
            keyUsage = critical,keyCertSign,cRLSign
            subjectKeyIdentifier = hash
            [server_ext]
            basicConstraints = critical,CA:FALSE
            keyUsage = critical,digitalSignature
            extendedKeyUsage = serverAuth
            subjectAltName = DNS:localhost,IP:127.0.0.1
            subjectKeyIdentifier = hash
            authorityKeyIdentifier = keyid,issuer

            """.write(toFile: config, atomically: true, encoding: .utf8)
        let certificates = TestCertificates(caPath: path("ca.pem"), certPath: path("server.pem"), keyPath: path("server.key"))
        let newKey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        let steps: [[String]] = [
            ["req", "-x509", "-config", config, "-extensions", "ca_ext"] + newKey
                + ["-keyout", path("ca.key"), "-out", certificates.caPath, "-days", "3650", "-subj", "/CN=Sluice Test CA"],
            ["req", "-new", "-config", config] + newKey
                + ["-keyout", certificates.keyPath, "-out", path("server.csr"), "-subj", "/CN=localhost"],
            [
                "x509", "-req", "-in", path("server.csr"), "-CA", certificates.caPath, "-CAkey", path("ca.key"),
                "-CAcreateserial", "-CAserial", path("ca.srl"), "-out", certificates.certPath, "-days", "3650",
                "-extfile", config, "-extensions", "server_ext",
            ],
        ]
        var environment = ProcessInfo.processInfo.environment
        environment["OPENSSL_CONF"] = config
        for step in steps {
            let result = try runProgram(openssl, step, environment: environment)
            guard result.status == 0 else {
                throw DrainPeerError("openssl \(step.joined(separator: " ")) exited \(result.status): \(result.stderr)")
            }
        }
        return certificates
    }
}
