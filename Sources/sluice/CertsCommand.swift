import Foundation
import ArgumentParser
import SluiceCLI
import SluiceTLS

struct CertsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "certs",
        abstract: "Make a development CA and a certificate for each role (agent, controller, server, client).",
        discussion: """
            Writes DIR/ca.pem and DIR/ca-key.pem (kept if there, so certificates can be added for new hosts), and \
            DIR/ROLE.pem with DIR/ROLE-key.pem for each role; every certificate names sluice-ROLE, localhost, \
            127.0.0.1, ::1 and each --hosts entry (the agent's also metron, the controller's also doppler and \
            reverselogproxy: the names Loggregator's gRPC clients expect), and serves as both server and client certificate. Keys are \
            readable by their owner only. For development and tests: in production use the platform's own CA.
            """)

    @Argument(help: "The directory to write into (made if missing).")
    var directory: String

    @Option(help: "More names for every certificate, comma-separated: DNS names or IP addresses.")
    var hosts: String?

    @Option(help: "Days each role's certificate is valid.")
    var days: Int = 365

    func validate() throws {
        guard days > 0 else { throw ValidationError("--days must be at least 1") }
    }

    func run() throws {
        let names = hosts.map { $0.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) } } ?? []
        let written: [String]
        do {
            written = try CertificateDirectory.make(in: directory, hosts: names.filter { !$0.isEmpty }, days: days)
        } catch {
            throw CommandFailure("\(error)")
        }
        for path in written { print(path) }
        let server = CertificateDirectory.files(in: directory, role: "server")
        print("Use with: sluice server --tls-cert \(server.cert) --tls-key \(server.key) --tls-ca \(server.ca)  (and the same for each role)")
    }
}
