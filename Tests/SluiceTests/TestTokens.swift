import Foundation
import SluiceAuth

/// A token signing key in a directory of its own, an `Authorizer` that
/// trusts it, and tokens made with it (as `sluice token create` makes them).
struct TestTokens {
    let directory: URL
    let secret: String
    let authorizer: Authorizer

    static func make(_ name: String) async throws -> TestTokens {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-\(name)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let secret = directory.appendingPathComponent("secret").path
        try TokenIssuer.ensureSecret(at: secret)
        let verifier = try await TokenVerifier(settings: TokenSettings(secretFiles: [secret]))
        return TestTokens(directory: directory, secret: secret, authorizer: Authorizer(verifier: verifier))
    }

    /// A token valid for ten minutes.
    func token(admin: Bool = false, apps: [String] = []) async throws -> String {
        try await TokenIssuer.create(keyFile: secret, admin: admin, apps: apps, ttl: 600)
    }

    func remove() {
        try? FileManager.default.removeItem(at: directory)
    }
}
