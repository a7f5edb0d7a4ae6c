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
            let secret = try read(path).trimmingCharacters(in: .whitespacesAndNewlines)
            // A PEM file taken for a secret would make a public key a
            // signing key: anyone holding it could make tokens.
            guard !secret.contains("-----BEGIN") else {
                throw LoadError(description: "\(path): a PEM file is not a shared secret; give it with --token-public-key")
            }
            guard secret.utf8.count >= 16 else {
                throw LoadError(description: "\(path): a token secret must be at least 16 bytes")
            }
            await collection.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256, kid: JWKIdentifier(string: "secret-\(index)"))
            algorithms.insert("HS256")
            loaded.append("HS256 from \(path)")
        }
        for (index, path) in settings.publicKeyFiles.enumerated() {
            let pem = try read(path)
            let kid = JWKIdentifier(string: "public-key-\(index)")
            if let rsa = try? Insecure.RSA.PublicKey(pem: pem) {
                await collection.add(rsa: rsa, digestAlgorithm: .sha256, kid: kid)
                algorithms.insert("RS256")
                loaded.append("RS256 from \(path)")
            } else if let rsa = try? Insecure.RSA.PublicKey(certificatePEM: pem) {
                await collection.add(rsa: rsa, digestAlgorithm: .sha256, kid: kid)
                algorithms.insert("RS256")
                loaded.append("RS256 from \(path)")
            } else if let ec = try? ES256PublicKey(pem: pem) {
                await collection.add(ecdsa: ec, kid: kid)
                algorithms.insert("ES256")
                loaded.append("ES256 from \(path)")
            } else if let ec = try? ES256PublicKey(certificate: pem) {
                await collection.add(ecdsa: ec, kid: kid)
                algorithms.insert("ES256")
                loaded.append("ES256 from \(path)")
            } else {
                throw LoadError(description: "\(path): not a PEM RSA or EC P-256 public key or certificate")
            }
        }
        for path in settings.jwksFiles {
            let found = try jwksAlgorithms(try read(path), path: path)
            // Every key gets its algorithm named, so that a token's header
            // cannot choose one for it.
            let json = try withAlgorithms(try read(path), path: path)
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

    /// The JWKS with each key's `alg` filled in where it was missing (RSA:
    /// RS256; EC P-256: ES256).
    static func withAlgorithms(_ json: String, path: String) throws -> String {
        guard var document = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any],
            let keys = document["keys"] as? [[String: Any]]
        else {
            throw LoadError(description: #"\#(path): not a JWKS ({"keys": [...]})"#)
        }
        document["keys"] = keys.map { key -> [String: Any] in
            guard key["alg"] == nil else { return key }
            var key = key
            key["alg"] = (key["kty"] as? String) == "RSA" ? "RS256" : "ES256"
            return key
        }
        return String(decoding: try JSONSerialization.data(withJSONObject: document), as: UTF8.self)
    }

    /// The algorithms a JWKS's keys verify: each key's `alg`, or what its
    /// type implies (RSA: RS256; EC P-256: ES256).
    static func jwksAlgorithms(_ json: String, path: String) throws -> Set<String> {
        struct Document: Decodable {
            struct Key: Decodable {
                var kty: String?
                var alg: String?
                var crv: String?
                var kid: String?
            }
            var keys: [Key]
        }
        guard let document = try? JSONDecoder().decode(Document.self, from: Data(json.utf8)) else {
            throw LoadError(description: #"\#(path): not a JWKS ({"keys": [...]})"#)
        }
        var algorithms: Set<String> = []
        for key in document.keys {
            guard key.kid != nil else { throw LoadError(description: "\(path): every key needs a kid") }
            if let alg = key.alg {
                algorithms.insert(alg)
            } else if key.kty == "RSA" {
                algorithms.insert("RS256")
            } else if key.kty == "EC" && (key.crv == nil || key.crv == "P-256") {
                algorithms.insert("ES256")
            } else {
                throw LoadError(description: "\(path): a key of type \(key.kty ?? "?") without alg is not taken")
            }
        }
        algorithms.remove("none")
        return algorithms
    }
}
