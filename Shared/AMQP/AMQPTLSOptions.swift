/// The certificates of an `amqps://` connection, named by the URL's query with RabbitMQ's own
/// parameter names: `cacertfile` (PEM bundle that must have signed the broker's certificate; the
/// system bundle when absent), `certfile` + `keyfile` (PEM client certificate and its unencrypted
/// key, for brokers that require one), `verify=verify_peer|verify_none` (`verify_none` skips the
/// broker's certificate and host name checks: for a developer's throw-away broker only).
public struct AMQPTLSOptions: Sendable, Hashable {
    public var caCertificatePath: String?
    public var clientCertificatePath: String?
    public var clientKeyPath: String?
    /// Check the broker's certificate chain and that it names the URL's host.
    public var verifyPeer: Bool

    public init(
        caCertificatePath: String? = nil, clientCertificatePath: String? = nil, clientKeyPath: String? = nil,
        verifyPeer: Bool = true
    ) {
        self.caCertificatePath = caCertificatePath
        self.clientCertificatePath = clientCertificatePath
        self.clientKeyPath = clientKeyPath
        self.verifyPeer = verifyPeer
    }

    /// The query parameters this reader knows; any other is refused rather than silently ignored.
    static let parameterNames = ["cacertfile", "certfile", "keyfile", "verify"]

    /// Reads `name=value&…`; `bad` turns a reason into the URL's error.
    init(query: Substring, isTLS: Bool, bad: (String) -> AMQPError) throws(AMQPError) {
        self.init()
        guard !query.isEmpty else { return }
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, let name = AMQPURL.percentDecoded(parts[0]),
                let value = AMQPURL.percentDecoded(parts[1])
            else { throw bad("query: expected name=value, got '\(pair)'") }
            guard !value.isEmpty else { throw bad("\(name): empty value") }
            switch name {
            case "cacertfile": caCertificatePath = value
            case "certfile": clientCertificatePath = value
            case "keyfile": clientKeyPath = value
            case "verify":
                switch value {
                case "verify_peer": verifyPeer = true
                case "verify_none": verifyPeer = false
                default: throw bad("verify: expected verify_peer or verify_none, got '\(value)'")
                }
            default:
                throw bad("query: unknown parameter '\(name)' (known: \(AMQPTLSOptions.parameterNames.joined(separator: ", ")))")
            }
        }
        guard isTLS else {
            throw bad("query: \(AMQPTLSOptions.parameterNames.joined(separator: ", ")) are TLS parameters: they need an amqps:// URL")
        }
        if (clientCertificatePath == nil) != (clientKeyPath == nil) {
            throw bad("certfile and keyfile: give both (a client certificate and its key) or neither")
        }
    }

    /// The options as a URL query (without `?`), in a fixed order.
    var query: String {
        var pairs: [String] = []
        if let caCertificatePath { pairs.append("cacertfile=\(AMQPURL.percentEncoded(caCertificatePath, keepingSlashes: true))") }
        if let clientCertificatePath { pairs.append("certfile=\(AMQPURL.percentEncoded(clientCertificatePath, keepingSlashes: true))") }
        if let clientKeyPath { pairs.append("keyfile=\(AMQPURL.percentEncoded(clientKeyPath, keepingSlashes: true))") }
        if !verifyPeer { pairs.append("verify=verify_none") }
        return pairs.joined(separator: "&")
    }
}
