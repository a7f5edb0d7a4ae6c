import Foundation
import JWTKit

/// Makes tokens, for `sluice token create` and `sluice up`: signed with a
/// shared secret file (HS256), or a PEM private key (RSA: RS256; EC P-256:
/// ES256).
public enum TokenIssuer {
    public struct IssueError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Writes a new random secret (32 bytes, hex) readable by its owner
    /// only, unless the file exists. Returns whether it made one.
    @discardableResult
    public static func ensureSecret(at path: String) throws -> Bool {
        if FileManager.default.fileExists(atPath: path) { return false }
        var generator = SystemRandomNumberGenerator()
        let hex = (0..<32).map { _ in
            let byte = UInt8.random(in: 0...255, using: &generator)
            return (byte < 16 ? "0" : "") + String(byte, radix: 16)
        }.joined()
        do {
            try PrivateFile.write(Data((hex + "\n").utf8), to: path, exclusive: true)
        } catch {
            throw IssueError(description: "\(error)")
        }
        return true
    }

    /// A token for an admin (`scope: ["sluice.admin"]`) or for some apps
    /// (`app_ids`), valid from now for `ttl`.
    public static func create(
        keyFile: String, admin: Bool, apps: [String], ttl: TimeInterval, issuer: String? = nil,
        audience: String? = nil, subject: String? = nil, now: Date = Date()
    ) async throws -> String {
        let text: String
        do {
            text = try String(contentsOfFile: keyFile, encoding: .utf8)
        } catch {
            throw IssueError(description: "\(keyFile): cannot be read (\(error.localizedDescription))")
        }
        let keys = JWTKeyCollection()
        if text.contains("PRIVATE KEY-----") {
            if let rsa = try? Insecure.RSA.PrivateKey(pem: text) {
                await keys.add(rsa: rsa, digestAlgorithm: .sha256)
            } else if let ec = try? ES256PrivateKey(pem: text) {
                await keys.add(ecdsa: ec)
            } else {
                throw IssueError(description: "\(keyFile): not a PEM RSA or EC P-256 private key")
            }
        } else {
            do {
                await keys.add(hmac: HMACKey(from: try TokenKeys.sharedSecret(text, path: keyFile)), digestAlgorithm: .sha256)
            } catch {
                throw IssueError(description: "\(error)")
            }
        }
        let claims = TokenClaims(
            exp: now.addingTimeInterval(ttl), iat: now, iss: issuer, aud: audience.map { [$0] }, sub: subject,
            scope: admin ? ["sluice.admin"] : nil, appIDs: admin ? nil : apps)
        return try await keys.sign(claims)
    }
}
