/// Something that happened to a connection as a whole; see `AMQPConnection.events`.
public enum AMQPConnectionEvent: Sendable, Equatable {
    /// The connection dropped; a reconnect is under way when enabled.
    case disconnected(AMQPError)
    /// Connected again; declared topology and consumers are back.
    case reconnected
    /// The broker stopped reading publishes (memory or disk alarm).
    case blocked(reason: String)
    case unblocked
}
