/// Where a member's link certificate, its key and the CA it trusts are,
/// and which names it expects of its peers: `--tls-cert`, `--tls-key`,
/// `--tls-ca`, `--tls-server-name`, `--tls-allowed-name`, or the `tls`
/// object of a cluster file.
public struct TLSFiles: Codable, Equatable, Sendable {
    /// PEM: this member's certificate, then any intermediates.
    public var cert: String
    /// PEM: its private key (PKCS#8, EC or RSA).
    public var key: String
    /// PEM: the CA certificates a peer's certificate must chain to. Empty
    /// for a listener that only serves (HTTPS for readers, the agent's TLS
    /// inputs) and asks clients for no certificate.
    public var ca: String
    /// The name a server's certificate must carry, instead of the host
    /// dialled (which may be an IP address: then an IP SAN must match it).
    public var serverName: String?
    /// Names (DNS SAN or common name) of the clients a listener lets in;
    /// empty or nil: any certificate the CA signed.
    public var allowedNames: [String]?

    public init(cert: String, key: String, ca: String, serverName: String? = nil, allowedNames: [String]? = nil) {
        self.cert = cert
        self.key = key
        self.ca = ca
        self.serverName = serverName
        self.allowedNames = allowedNames
    }
}
