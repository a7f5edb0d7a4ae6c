import Foundation
import SluiceAuth
import SluiceTLS

/// `sluice certs DIR`: a development CA and one certificate per role, as
/// PEM files in one directory. `ca.pem` and `ca-key.pem` are kept if there
/// (so certificates can be added for new hosts); each role's `ROLE.pem`
/// and `ROLE-key.pem` are made anew. Keys are written 0600.
public enum CertificateDirectory {
    /// The roles a certificate is made for, each named `sluice-ROLE` in it:
    /// `client` is what `sluice emit` and `bench load` show.
    public static let roles = ["agent", "controller", "server", "client"]

    /// The names Loggregator's clients expect of the part a role stands in
    /// for: `metron` of an agent's gRPC ingress, `doppler` and
    /// `reverselogproxy` of a controller's.
    public static let loggregatorNames = ["agent": ["metron"], "controller": ["doppler", "reverselogproxy"]]

    /// The names every certificate carries besides its role's and `hosts`.
    public static let localNames = ["localhost", "127.0.0.1", "::1"]

    public static func files(in directory: String, role: String) -> TLSFiles {
        let base = URL(fileURLWithPath: directory)
        return TLSFiles(
            cert: base.appendingPathComponent("\(role).pem").path, key: base.appendingPathComponent("\(role)-key.pem").path,
            ca: base.appendingPathComponent("ca.pem").path)
    }

    /// Makes what is missing (`replace`: every role's certificate anew);
    /// returns the paths written.
    @discardableResult
    public static func make(
        in directory: String, hosts: [String] = [], days: Int = 365, replace: Bool = true
    ) throws -> [String] {
        let base = URL(fileURLWithPath: directory)
        let caPath = base.appendingPathComponent("ca.pem").path
        let caKeyPath = base.appendingPathComponent("ca-key.pem").path
        var written: [String] = []
        let ca: DevelopmentCA
        if FileManager.default.fileExists(atPath: caPath) || FileManager.default.fileExists(atPath: caKeyPath) {
            do {
                ca = try DevelopmentCA(
                    certificatePEM: try String(contentsOfFile: caPath, encoding: .utf8),
                    keyPEM: try String(contentsOfFile: caKeyPath, encoding: .utf8))
            } catch {
                throw CommandFailure("\(directory): cannot use its CA (\(error))")
            }
        } else {
            ca = try DevelopmentCA(days: max(days, 365 * 3))
            try PrivateFile.write(Data((ca.keyPEM + "\n").utf8), to: caKeyPath, exclusive: true)
            try write(ca.certificatePEM, to: caPath)
            written += [caPath, caKeyPath]
        }
        for role in roles {
            let files = files(in: directory, role: role)
            if !replace && FileManager.default.fileExists(atPath: files.cert)
                && FileManager.default.fileExists(atPath: files.key)
            {
                continue
            }
            var names = ["sluice-\(role)"] + loggregatorNames[role, default: []]
            for name in localNames + hosts where !names.contains(name) { names.append(name) }
            let issued = try ca.issue(names: names, days: days)
            try PrivateFile.write(Data((issued.keyPEM + "\n").utf8), to: files.key)
            try write(issued.certificatePEM, to: files.cert)
            written += [files.cert, files.key]
        }
        return written
    }

    /// A certificate: anyone may read it.
    static func write(_ text: String, to path: String) throws {
        // Ending in a newline, so that `cat old.pem new.pem` makes a bundle.
        try PrivateFile.write(Data((text.hasSuffix("\n") ? text : text + "\n").utf8), to: path)
        guard chmod(path, 0o644) == 0 else {
            throw CommandFailure("\(path): cannot be made readable (\(String(cString: strerror(errno))))")
        }
    }
}
