import AMQP
import Messages
import ServiceSupport

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A client of a running Hyperion: publishes one request onto `hyperion.ingress` and reads the
/// streamed replies through direct reply-to, as any client in any language would.
struct RemoteGeneration {
    var amqpURL: String
    var request: InferenceRequest
    /// Longest wait for the final reply.
    var timeoutSeconds: Double

    /// `generate`'s exit status when the system refused the request for load (EX_TEMPFAIL: retry later).
    static let overloadedExitCode: Int32 = 75

    enum Failure: Error, CustomStringConvertible {
        case broker(String)
        /// The bounded ingress queue is full: the broker refused the request (publisher nack).
        case overloaded
        case refused(ErrorReply)
        case timedOut(Double)

        var description: String {
            switch self {
            case .broker(let text): text
            case .overloaded:
                "system overloaded: the request queue (hyperion.ingress) is full and the broker refused the request; try again later"
            case .refused(let error): "\(error.code.rawValue): \(error.message)"
            case .timedOut(let seconds): "no result within \(Int(seconds)) s (is a scheduler running?)"
            }
        }
    }

    /// Sends the request; calls `onToken` for each streamed token, returns the result.
    func run(onToken: (TokenReply) -> Void) async throws(Failure) -> ResultReply {
        let connection: AMQPConnection
        do {
            connection = try await AMQPConnection.connect(
                to: try AMQPURL(amqpURL),
                configuration: AMQPConnectionConfiguration(connectionName: "hyperion-cli", heartbeatSeconds: 10, reconnect: .disabled))
        } catch {
            throw .broker("cannot reach the broker at \(AMQPURL.redacted(amqpURL)): \(error)")
        }
        defer { Task { await connection.close() } }
        let correlationID = request.id ?? ProcessEnvironment.uuid()
        var request = request
        request.id = correlationID
        let replies: AMQPConsumer
        do {
            replies = try await connection.consume(
                queue: AMQPRPCClient.directReplyQueue, prefetchCount: 0, noAck: true, confirmsPublishes: true)
            let message = AMQPMessage(
                body: encodeMessage(request),
                properties: AMQPProperties(
                    contentType: Names.ContentType.json, deliveryMode: 2, correlationID: correlationID,
                    replyTo: AMQPRPCClient.directReplyQueue))
            // Confirmed, so a full ingress queue (reject-publish) is reported instead of waited out.
            try await connection.publishConfirmed(
                message, exchange: Names.Exchange.ingress, routingKey: Names.Queue.ingress, onChannelOf: replies.tag)
        } catch .nacked {
            throw .overloaded
        } catch {
            throw .broker("cannot publish the request: \(error)")
        }
        let deadline = Task {
            try? await Task.sleep(for: .seconds(timeoutSeconds))
            try? await replies.cancel()
        }
        defer { deadline.cancel() }
        do {
            for try await delivery in replies {
                guard delivery.properties.correlationID == correlationID,
                    let reply = try? decodeMessage(Reply.self, from: delivery.body)
                else { continue }
                switch reply {
                case .token(let token): onToken(token)
                case .result(let result): return result
                case .error(let error): throw Failure.refused(error)
                }
            }
        } catch let failure as Failure {
            throw failure
        } catch {
            throw .broker("the reply stream broke: \(error)")
        }
        throw .timedOut(timeoutSeconds)
    }
}
