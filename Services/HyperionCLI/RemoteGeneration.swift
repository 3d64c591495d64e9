import AMQP
import Messages
import ServiceSupport
import Synchronization

/// A client of a running Hyperion: publishes one request onto `hyperion.ingress` and reads the
/// streamed replies through direct reply-to, as any client in any language would. A request it
/// stops waiting for (Ctrl-C, `--timeout`) is cancelled, so no worker goes on decoding for nobody.
struct RemoteGeneration {
    var amqpURL: String
    var request: InferenceRequest
    /// Longest wait for the final reply; also sent as the request's `deadline_s`.
    var timeoutSeconds: Double

    /// Why the client stopped waiting before the final reply.
    enum Abandon: Sendable {
        case timedOut, interrupted
    }

    enum Failure: Error, CustomStringConvertible {
        case badURL(String)
        /// No broker listens at the URL.
        case unreachable(String)
        /// The broker refused the user, password or virtual host.
        case loginRefused(String)
        /// The broker has no `hyperion.ingress`: no Hyperion service ever declared it there.
        case noServices(String)
        case broker(String)
        /// The bounded ingress queue is full: the broker refused the request (publisher nack).
        case overloaded
        case refused(ErrorReply)
        /// No final reply within the timeout, after `tokens` streamed tokens; the request was cancelled.
        case timedOut(seconds: Double, tokens: Int)
        /// SIGINT or SIGTERM; the request was cancelled.
        case interrupted

        var description: String {
            switch self {
            case .badURL(let text): text
            case .unreachable(let text): "\(text) (scripts/up starts one on this machine)"
            case .loginRefused(let text): text
            case .noServices(let url):
                "no Hyperion services on the broker at \(url): nothing declared hyperion.ingress there (start them with scripts/up, or check the URL's virtual host)"
            case .broker(let text): text
            case .overloaded:
                "system overloaded: the request queue (hyperion.ingress) is full and the broker refused the request; try again later"
            case .refused(let error): "\(error.code.rawValue): \(error.message)"
            case .timedOut(let seconds, 0):
                "no token within \(Int(seconds)) s; the request was cancelled (is a scheduler running? are the stage workers serving? see hyperion status)"
            case .timedOut(let seconds, let tokens):
                "no result within \(Int(seconds)) s, after \(tokens) tokens; the request was cancelled (a stage worker may be stuck or slow, or the output too long for the time: see hyperion status)"
            case .interrupted: "interrupted; the request was cancelled"
            }
        }

        /// The exit status of `generate` for this failure; the README's table lists them all.
        var exitCode: Int32 {
            switch self {
            case .badURL: 2
            case .refused(let error) where error.code == .badRequest || error.code == .tooLong: 2
            case .refused, .broker: 1
            case .unreachable, .noServices: 69  // EX_UNAVAILABLE
            case .loginRefused: 77  // EX_NOPERM
            case .overloaded: 75  // EX_TEMPFAIL: retry later
            case .timedOut: 124  // as timeout(1)
            case .interrupted: 130  // 128 + SIGINT
            }
        }
    }

    /// Sends the request; calls `onToken` for each streamed token, returns the result.
    /// Connects as a command of this CLI does, with a failure that tells a bad URL, no broker and a
    /// refused login apart (each its own exit status).
    static func connect(to amqpURL: String, name: String) async throws(Failure) -> (AMQPURL, AMQPConnection) {
        let url: AMQPURL
        do {
            url = try AMQPURL(amqpURL)
        } catch {
            throw .badURL("\(error)")
        }
        do {
            let connection = try await AMQPConnection.connect(
                to: url, configuration: AMQPConnectionConfiguration(connectionName: name, heartbeatSeconds: 10, reconnect: .disabled))
            return (url, connection)
        } catch .brokerUnreachable(let at, let reason) {
            throw .unreachable("cannot reach the broker at \(at): \(reason)")
        } catch .loginRefused(let at, let reason) {
            throw .loginRefused("the broker at \(at) refused the login: \(reason)")
        } catch {
            throw .broker("cannot reach the broker at \(url): \(error)")
        }
    }

    func run(onToken: (TokenReply) -> Void) async throws(Failure) -> ResultReply {
        let (url, connection) = try await Self.connect(to: amqpURL, name: "hyperion-cli")
        defer { Task { await connection.close() } }
        let correlationID = request.id ?? ProcessEnvironment.uuid()
        var request = request
        request.id = correlationID
        request.deadlineSeconds = timeoutSeconds
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
        } catch let error where error.replyCode == 404 {
            throw .noServices(url.description)
        } catch {
            throw .broker("cannot publish the request: \(error)")
        }

        // The first of timeout and signal abandons the request: cancel it on the channel that sent
        // it (the broker gives the cancel the same reply address), then stop reading.
        let abandoned = Mutex<Abandon?>(nil)
        let abandon: @Sendable (Abandon) -> Void = { reason in
            let first = abandoned.withLock { current in
                guard current == nil else { return false }
                current = reason
                return true
            }
            guard first else { return }
            Task {
                try? await connection.publish(
                    AMQPMessage(
                        body: encodeMessage(CancelRequest(id: correlationID)),
                        properties: AMQPProperties(contentType: Names.ContentType.json, replyTo: AMQPRPCClient.directReplyQueue)),
                    exchange: Names.Exchange.cancel, routingKey: "", onChannelOf: replies.tag)
                try? await replies.cancel()
            }
        }
        let signals = TerminationSignals { _ in abandon(.interrupted) }
        defer { signals.cancel() }
        let deadline = Task {
            try? await Task.sleep(for: .seconds(timeoutSeconds))
            if !Task.isCancelled { abandon(.timedOut) }
        }
        defer { deadline.cancel() }
        var streamed = 0
        do {
            for try await delivery in replies {
                guard delivery.properties.correlationID == correlationID,
                    let reply = try? decodeMessage(Reply.self, from: delivery.body)
                else { continue }
                switch reply {
                case .token(let token):
                    streamed += 1
                    onToken(token)
                case .result(let result) where result.finishReason == .deadline:
                    // The system ended the request at the deadline this client sent: a timeout too.
                    throw Failure.timedOut(seconds: timeoutSeconds, tokens: streamed)
                case .result(let result) where abandoned.withLock({ $0 }) == nil: return result
                case .error(let error) where abandoned.withLock({ $0 }) == nil: throw Failure.refused(error)
                case .result, .error: break
                }
            }
        } catch let failure as Failure {
            throw failure
        } catch {
            throw .broker("the reply stream broke: \(error)")
        }
        switch abandoned.withLock({ $0 }) {
        case .interrupted: throw .interrupted
        case .timedOut, nil: throw .timedOut(seconds: timeoutSeconds, tokens: streamed)
        }
    }
}
