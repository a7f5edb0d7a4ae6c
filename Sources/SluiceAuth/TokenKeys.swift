import Foundation
import JWTKit

/// The keys a controller trusts, read from their files, and the algorithms
/// they verify: a token naming another algorithm (`none` among them) is
/// refused before any key is tried.
struct TokenKeys: Sendable {
    let collection: JWTKeyCollection
    let algorithms: Set<String>
    /// What was loaded, for the log: "HS256 from /path, RS256 from …".
    let summary: String

    struct LoadError: Error, CustomStringConvertible {
        var description: String
    }

    static func load(_ settings: TokenSettings) async throws -> TokenKeys {
        let collection = JWTKeyCollection()
        var algorithms: Set<String> = []
        var loaded: [String] = []
        for (index, path) in settings.secretFiles.enumerated() {
            let secret = try sharedSecret(try read(path), path: path)
            await collection.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256, kid: JWKIdentifier(string: "secret-\(index)"))
            algorithms.insert("HS256")
            loaded.append("HS256 from \(path)")
        }
        for (index, path) in settings.publicKeyFiles.enumerated() {
            let pem = try read(path)
            let kid = JWKIdentifier(string: "public-key-\(index)")
            let algorithm: String
            if let rsa = (try? Insecure.RSA.PublicKey(pem: pem)) ?? (try? Insecure.RSA.PublicKey(certificatePEM: pem)) {
                await collection.add(rsa: rsa, digestAlgorithm: .sha256, kid: kid)
                algorithm = "RS256"
            } else if let ec = (try? ES256PublicKey(pem: pem)) ?? (try? ES256PublicKey(certificate: pem)) {
                await collection.add(ecdsa: ec, kid: kid)
                algorithm = "ES256"
            } else {
                throw LoadError(description: "\(path): not a PEM RSA or EC P-256 public key or certificate")
            }
            algorithms.insert(algorithm)
            loaded.append("\(algorithm) from \(path)")
        }
        for path in settings.jwksFiles {
            let (json, found) = try jwks(try read(path), path: path)
            do {
                try await collection.add(jwksJSON: json)
            } catch {
                throw LoadError(description: "\(path): not a usable JWKS: \(error)")
            }
            algorithms.formUnion(found)
            loaded.append("\(found.sorted().joined(separator: ", ")) from \(path)")
        }
        return TokenKeys(collection: collection, algorithms: algorithms, summary: loaded.joined(separator: "; "))
    }

    static func read(_ path: String) throws -> String {
        do {
            return try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw LoadError(description: "\(path): cannot be read (\(error.localizedDescription))")
        }
    }

    /// A shared secret file's secret: trimmed, at least 16 bytes, and no
    /// PEM file, since a public key taken for a secret would let anyone
    /// holding it make tokens.
    static func sharedSecret(_ text: String, path: String) throws -> String {
        let secret = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !secret.contains("-----BEGIN") else {
            throw LoadError(
                description: "\(path): a PEM file is not a shared secret (a public key gives --token-public-key; a private key signs)")
        }
        guard secret.utf8.count >= 16 else {
            throw LoadError(description: "\(path): a token secret must be at least 16 bytes")
        }
        return secret
    }

    /// A JWKS with every key's `alg` named, so that a token's header cannot
    /// choose one for it (a key's own `alg`, else what its type implies:
    /// RSA RS256, EC P-256 ES256), and the algorithms its keys verify.
    /// Every key needs a `kid`.
    static func jwks(_ json: String, path: String) throws -> (json: String, algorithms: Set<String>) {
        guard let document = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any],
            let keys = document["keys"] as? [[String: Any]]
        else {
            throw LoadError(description: #"\#(path): not a JWKS ({"keys": [...]})"#)
        }
        var algorithms: Set<String> = []
        var named: [[String: Any]] = []
        for var key in keys {
            guard key["kid"] is String else { throw LoadError(description: "\(path): every key needs a kid") }
            let type = key["kty"] as? String
            if key["alg"] == nil {
                if type == "RSA" {
                    key["alg"] = "RS256"
                } else if type == "EC" && (key["crv"] == nil || key["crv"] as? String == "P-256") {
                    key["alg"] = "ES256"
                } else {
                    throw LoadError(description: "\(path): a key of type \(type ?? "?") without alg is not taken")
                }
            }
            if let alg = key["alg"] as? String, alg != "none" { algorithms.insert(alg) }
            named.append(key)
        }
        var filled = document
        filled["keys"] = named
        return (String(decoding: try JSONSerialization.data(withJSONObject: filled), as: UTF8.self), algorithms)
    }
}
