import AMQP

/// Feeds a service's single event loop: deliveries of consumers and a periodic tick become events
/// of one `AsyncStream`, so all of a service's state is touched by one task.
public enum EventPump {
    /// Yields `wrap(delivery)` for every delivery of `consumer`, then `ended(reason)` once it stops.
    public static func forward<Event: Sendable>(
        _ consumer: AMQPConsumer, named name: String, into continuation: AsyncStream<Event>.Continuation,
        as wrap: @escaping @Sendable (AMQPDelivery) -> Event, ended: @escaping @Sendable (String) -> Event
    ) {
        Task {
            do {
                for try await delivery in consumer { continuation.yield(wrap(delivery)) }
            } catch {
                continuation.yield(ended("\(name) (\(error))"))
                return
            }
            continuation.yield(ended(name))
        }
    }

    /// Yields `event` every `seconds`.
    public static func tick<Event: Sendable>(
        every seconds: Double, into continuation: AsyncStream<Event>.Continuation, _ event: Event
    ) {
        Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(seconds))
                continuation.yield(event)
            }
        }
    }
}
