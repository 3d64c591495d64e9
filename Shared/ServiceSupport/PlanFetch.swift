import AMQP
import Messages

/// How a service that has just started gets the plan in force: it asks the planner
/// (`hyperion.plan.get`, a direct reply-to call) until the planner answers once, backing off from
/// 0.5 s to 5 s between attempts, and stops at the first answer (a plan that came first by fanout
/// on `hyperion.plan` makes the answer a duplicate the service ignores by its version). The reply
/// goes into the service's own event stream: the task reads none of the service's state. The
/// service cancels the task when it stops.
public enum PlanFetch {
    public static func start(
        on connection: AMQPConnection, deliver: @escaping @Sendable (AMQPDelivery) -> Void
    ) -> Task<Void, Never> {
        Task {
            let request = AMQPMessage(
                body: encodeMessage(PlanRequest()), properties: AMQPProperties(contentType: Names.ContentType.json))
            var client: AMQPRPCClient?
            var delay = 0.5
            while !Task.isCancelled {
                if client == nil { client = try? await AMQPRPCClient.start(on: connection) }
                if let client,
                    let reply = try? await client.call(
                        request, exchange: Names.Exchange.internal, routingKey: Names.Queue.planGet, timeoutSeconds: 2)
                {
                    deliver(reply)
                    break
                }
                try? await Task.sleep(for: .seconds(delay))
                delay = min(delay * 2, 5)
            }
            try? await client?.close()
        }
    }
}
