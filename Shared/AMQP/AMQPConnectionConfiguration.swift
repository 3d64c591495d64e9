import Logging

/// How a connection behaves; the defaults suit a long-running service.
public struct AMQPConnectionConfiguration: Sendable {
    /// Shown in the broker's connection list.
    public var connectionName: String
    /// Negotiated heartbeat; the broker drops a connection silent for about twice this long.
    public var heartbeatSeconds: Int
    public var reconnect: Reconnect
    public var connectTimeoutSeconds: Double
    /// CA bundle for `amqps` URLs.
    public var tlsCACertificatePath: String?
    /// How long the connection's thread keeps polling after its last work before it sleeps. A
    /// message that arrives meanwhile costs no thread wake-up; 0 trades that latency for idle CPU.
    public var spinMicroseconds: Int

    /// Automatic reconnection with exponential backoff between attempts.
    public struct Reconnect: Sendable {
        public var enabled: Bool
        public var initialDelaySeconds: Double
        public var maxDelaySeconds: Double

        public init(enabled: Bool = true, initialDelaySeconds: Double = 0.05, maxDelaySeconds: Double = 5) {
            self.enabled = enabled
            self.initialDelaySeconds = initialDelaySeconds
            self.maxDelaySeconds = maxDelaySeconds
        }

        public static let disabled = Reconnect(enabled: false)
    }

    public init(
        connectionName: String = "hyperion", heartbeatSeconds: Int = 30, reconnect: Reconnect = Reconnect(),
        connectTimeoutSeconds: Double = 10, tlsCACertificatePath: String? = "/etc/ssl/certs/ca-certificates.crt",
        spinMicroseconds: Int = 100
    ) {
        self.spinMicroseconds = spinMicroseconds
        self.connectionName = connectionName
        self.heartbeatSeconds = heartbeatSeconds
        self.reconnect = reconnect
        self.connectTimeoutSeconds = connectTimeoutSeconds
        self.tlsCACertificatePath = tlsCACertificatePath
    }
}

/// Settings as the connection's thread sees them.
struct ConnectionSettings: Sendable {
    var url: AMQPURL
    var configuration: AMQPConnectionConfiguration
    var logger: Logger

    var connectionName: String { configuration.connectionName }
    var heartbeatSeconds: Int { configuration.heartbeatSeconds }
    var reconnect: AMQPConnectionConfiguration.Reconnect { configuration.reconnect }
    var connectTimeoutSeconds: Double { configuration.connectTimeoutSeconds }
    var tlsCACertificatePath: String? { configuration.tlsCACertificatePath }
}
