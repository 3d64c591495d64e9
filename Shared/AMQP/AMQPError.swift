/// Everything that can go wrong talking to a broker, with the broker's own reply code and text
/// where it gave one, so a caller can tell "queue not found" (404) from "access refused" (403).
public enum AMQPError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The URL could not be parsed; `url` has its password hidden.
    case invalidURL(url: String, reason: String)
    /// No TCP (or TLS) connection could be made, or the handshake failed.
    case connectionFailed(url: String, reason: String)
    /// Nothing accepted a TCP connection at the URL's host and port: no broker listens there.
    case brokerUnreachable(url: String, reason: String)
    /// The broker answered but refused the user, its password or its access to the virtual host.
    case loginRefused(url: String, reason: String)
    /// The broker closed a channel because of the method it names (e.g. 404 NOT_FOUND on a passive
    /// declare, 406 PRECONDITION_FAILED on a redeclare with other arguments).
    case channelClosed(replyCode: UInt16, replyText: String, classID: UInt16, methodID: UInt16)
    /// The broker closed the whole connection (e.g. 320 CONNECTION_FORCED when it is stopped).
    case connectionClosedByBroker(replyCode: UInt16, replyText: String)
    /// The connection dropped while this operation was in flight; it may or may not have taken
    /// effect. Confirmed publishes that fail this way should be published again.
    case connectionLost(reason: String)
    /// The connection was closed by its owner; nothing more can be done on it.
    case connectionClosed
    /// A mandatory message could not be routed to any queue (`basic.return`).
    case returned(replyCode: UInt16, replyText: String, exchange: String, routingKey: String)
    /// The broker refused responsibility for a confirmed message (`basic.nack`).
    case nacked
    /// The broker cancelled a consumer, e.g. because its queue was deleted.
    case consumerCancelled(queue: String)
    /// An RPC reply did not arrive in time.
    case timeout(seconds: Double)
    /// A socket or protocol failure reported by rabbitmq-c.
    case library(status: Int32, message: String)

    public var description: String {
        switch self {
        case let .invalidURL(url, reason): "invalid AMQP URL '\(url)': \(reason)"
        case let .connectionFailed(url, reason): "cannot connect to \(url): \(reason)"
        case let .brokerUnreachable(url, reason): "cannot connect to \(url): \(reason)"
        case let .loginRefused(url, reason): "the broker at \(url) refused the login: \(reason)"
        case let .channelClosed(code, text, classID, methodID):
            "broker closed the channel: \(code) \(text) (method \(classID).\(methodID))"
        case let .connectionClosedByBroker(code, text): "broker closed the connection: \(code) \(text)"
        case let .connectionLost(reason): "connection lost: \(reason)"
        case .connectionClosed: "connection closed"
        case let .returned(code, text, exchange, routingKey):
            "message returned by the broker: \(code) \(text) (exchange '\(exchange)', routing key '\(routingKey)')"
        case .nacked: "broker nacked the message"
        case let .consumerCancelled(queue): "broker cancelled the consumer of queue '\(queue)'"
        case let .timeout(seconds): "no reply within \(seconds) s"
        case let .library(status, message): "rabbitmq-c error \(status): \(message)"
        }
    }

    /// The broker's reply code when it sent one (channel or connection close, return).
    public var replyCode: UInt16? {
        switch self {
        case let .channelClosed(code, _, _, _), let .connectionClosedByBroker(code, _), let .returned(code, _, _, _):
            code
        default: nil
        }
    }
}
