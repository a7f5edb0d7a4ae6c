import ArgumentParser
import CoreMetrics
import Logging
import Prometheus
import SluiceCLI
import SluiceTLS

/// Mutual TLS on the links between parts: `sluice server`, `controller`,
/// `agent`, `emit`, `bench load`. All three files or none.
struct TLSOptions: ParsableArguments {
    @Option(help: ArgumentHelp("PEM certificate (then intermediates) this part shows to its peers, as server and as client.", valueName: "FILE"))
    var tlsCert: String?

    @Option(help: ArgumentHelp("PEM private key of --tls-cert.", valueName: "FILE"))
    var tlsKey: String?

    @Option(help: ArgumentHelp("PEM CA certificates a peer's certificate must chain to; with it, every link is mutual TLS (1.2 or 1.3).", valueName: "FILE"))
    var tlsCa: String?

    @Option(help: "The name servers' certificates must carry (default: the host dialled; an IP address must be an IP SAN).")
    var tlsServerName: String?

    @Option(help: ArgumentHelp("A name (DNS SAN or common name) a client's certificate must carry to be let in; repeatable. Default: any certificate the CA signed.", valueName: "NAME"))
    var tlsAllowedName: [String] = []

    func validate() throws {
        let given = [tlsCert, tlsKey, tlsCa].compactMap { $0 }
        guard given.isEmpty || given.count == 3 else {
            throw ValidationError("TLS needs all of --tls-cert, --tls-key and --tls-ca")
        }
    }

    /// The files given, else `fallback` (a cluster file's, or config.json's)
    /// with the name flags applied; nil for none.
    func files(fallback: TLSFiles? = nil) throws -> TLSFiles? {
        var files: TLSFiles
        if let tlsCert, let tlsKey, let tlsCa {
            files = TLSFiles(cert: tlsCert, key: tlsKey, ca: tlsCa)
        } else if let fallback {
            files = fallback
        } else {
            guard tlsServerName == nil, tlsAllowedName.isEmpty else {
                throw ValidationError("--tls-server-name and --tls-allowed-name need --tls-cert, --tls-key and --tls-ca")
            }
            return nil
        }
        if let tlsServerName { files.serverName = tlsServerName }
        if !tlsAllowedName.isEmpty { files.allowedNames = tlsAllowedName }
        return files
    }

    /// The flags' TLS files, else the cluster file's for member `name`
    /// (its own, else the file's top-level `tls`).
    func files(config: String?, name: String?) throws -> TLSFiles? {
        guard let config, let name else { return try files() }
        do {
            return try files(fallback: try ClusterConfig.loadIfAny(path: config)?.tls(of: name))
        } catch let error as ValidationError {
            throw error
        } catch {
            throw ValidationError("\(error)")
        }
    }

    /// A certificate and key that only serve (HTTPS, the agent's TLS inputs).
    static func loadServing(
        cert: String, key: String, flags: String, registry: PrometheusCollectorRegistry?, logger: Logger
    ) throws -> LinkTLS {
        try load(TLSFiles(cert: cert, key: key, ca: ""), registry: registry, logger: logger, flags: flags)!
    }

    /// The files read: a file that cannot be used stops the command with why.
    /// An empty `ca` only serves (no client certificates asked).
    static func load(
        _ files: TLSFiles?, registry: PrometheusCollectorRegistry?, logger: Logger, flags: String = "--tls"
    ) throws -> LinkTLS? {
        guard let files else { return nil }
        do {
            let tls = try LinkTLS(
                files: files,
                metrics: registry.map { PrometheusMetricsFactory(registry: $0) as any MetricsFactory } ?? MetricsSystem.factory,
                flags: flags)
            if files.ca.isEmpty {
                logger.info("serving TLS", metadata: ["sluice.tls": "\(tls.summary)", "sluice.flags": "\(flags)"])
            } else {
                logger.info(flags == "--tls" ? "links use mutual TLS" : "mutual TLS", metadata: ["sluice.tls": "\(tls.summary)"])
            }
            return tls
        } catch {
            throw CommandFailure("\(error)")
        }
    }
}
