import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A running consumer: an `AsyncSequence` of deliveries.
///
/// Iterate it from one task. It ends by throwing `AMQPError.consumerCancelled` when the broker
/// cancels it (its queue was deleted), or normally after `cancel()` / when the connection closes.
/// Deliveries wait in memory (at most the prefetch count, with manual acks) until taken.
/// Cancelling the iterating task ends the iteration but not the subscription: call `cancel()`.
public struct AMQPConsumer: AsyncSequence, Sendable {
    public typealias Element = AMQPDelivery
    public typealias Failure = AMQPError

    let connection: AMQPConnection
    public let tag: String
    public let queue: String
    let buffer: DeliveryBuffer

    /// Stops deliveries; the broker requeues unacked ones. The sequence then ends normally.
    public func cancel() async throws(AMQPError) {
        try await connection.cancelConsumer(tag: tag)
    }

    public func makeAsyncIterator() -> Iterator { Iterator(buffer: buffer) }

    /// Takes deliveries in arrival order; one per consumer.
    public struct Iterator: AsyncIteratorProtocol {
        let buffer: DeliveryBuffer

        public mutating func next() async throws(AMQPError) -> AMQPDelivery? {
            try await buffer.next()
        }

        public mutating func next(isolation actor: isolated (any Actor)?) async throws(AMQPError) -> AMQPDelivery? {
            try await buffer.next()
        }
    }
}

/// Hands deliveries from the connection thread to one consuming task. A continuation is only
/// resumed when the task is already waiting; a busy consumer takes queued deliveries under the lock
/// without suspending.
final class DeliveryBuffer: DeliverySink {
    fileprivate struct State {
        var items: [AMQPDelivery] = []
        var head = 0
        var waiter: CheckedContinuation<Result<AMQPDelivery?, AMQPError>, Never>?
        var end: AMQPError?? = nil
    }

    private let state = Mutex(State())

    func deliver(_ delivery: AMQPDelivery) {
        let waiter = state.withLock { state in
            if let waiter = state.waiter {
                state.waiter = nil
                return Optional(waiter)
            }
            state.items.append(delivery)
            return nil
        }
        waiter?.resume(returning: .success(delivery))
    }

    func finish(_ error: AMQPError?) {
        let waiter = state.withLock { state in
            if state.end == nil { state.end = .some(error) }
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: error.map { .failure($0) } ?? .success(nil))
    }

    func next() async throws(AMQPError) -> AMQPDelivery? {
        if let ready = take() { return try ready.get() }
        if !Task.isCancelled, !ConnectionThread.isRunningJob, let ready = spinForDelivery() { return try ready.get() }
        let result = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Result<AMQPDelivery?, AMQPError>, Never>) in
                let ready: Result<AMQPDelivery?, AMQPError>? = state.withLock { state in
                    if let item = State.pop(&state) { return item }
                    // Cancelled before the waiter was installed: onCancel found nothing to resume.
                    if Task.isCancelled { return .success(nil) }
                    state.waiter = continuation
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
        } onCancel: {
            let waiter = state.withLock { state in
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume(returning: .success(nil))
        }
        return try result.get()
    }

    /// A reply to what the consumer just published often lands within tens of microseconds;
    /// checking for it a few times before suspending saves the thread wake-up a resumed task costs.
    /// Bounded (about 50 µs, yielding the CPU between checks), so it never holds a thread.
    private func spinForDelivery() -> Result<AMQPDelivery?, AMQPError>? {
        let start = ContinuousClock.now
        repeat {
            sched_yield()
            if let ready = take() { return ready }
        } while ContinuousClock.now - start < .microseconds(50)
        return nil
    }

    private func take() -> Result<AMQPDelivery?, AMQPError>? {
        state.withLock { State.pop(&$0) }
    }
}

extension DeliveryBuffer.State {
    /// The next delivery, else the end (once everything queued is taken), else nil to wait.
    fileprivate static func pop(_ state: inout DeliveryBuffer.State) -> Result<AMQPDelivery?, AMQPError>? {
        if state.head < state.items.count {
            let item = state.items[state.head]
            state.head += 1
            if state.head == state.items.count {
                state.items.removeAll(keepingCapacity: true)
                state.head = 0
            } else if state.head >= 1024 {
                state.items.removeFirst(state.head)
                state.head = 0
            }
            return .success(item)
        }
        if let end = state.end {
            return end.map { .failure($0) } ?? .success(nil)
        }
        return nil
    }
}
