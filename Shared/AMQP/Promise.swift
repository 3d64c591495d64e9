import Synchronization

/// A one-shot result handed from a connection's thread to whichever task awaits it. The first
/// `resolve` wins (a reply racing a timeout or a dropped connection is settled exactly once).
final class Promise<Value: Sendable>: Sendable {
    private enum State {
        case pending(CheckedContinuation<Result<Value, AMQPError>, Never>?)
        case done(Result<Value, AMQPError>)
    }

    private let state = Mutex<State>(.pending(nil))

    init() {}

    /// Returns false when the promise was already settled.
    @discardableResult
    func resolve(_ result: Result<Value, AMQPError>) -> Bool {
        let waiter: CheckedContinuation<Result<Value, AMQPError>, Never>?? = state.withLock { state in
            guard case let .pending(waiter) = state else { return nil }
            state = .done(result)
            return .some(waiter)
        }
        guard let waiter else { return false }
        waiter?.resume(returning: result)
        return true
    }

    func succeed(_ value: Value) { resolve(.success(value)) }
    func fail(_ error: AMQPError) { resolve(.failure(error)) }

    var isSettled: Bool {
        state.withLock { if case .done = $0 { true } else { false } }
    }

    func value() async throws(AMQPError) -> Value {
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<Result<Value, AMQPError>, Never>) in
            let ready: Result<Value, AMQPError>? = state.withLock { state in
                switch state {
                case let .done(result): return result
                case .pending:
                    state = .pending(continuation)
                    return nil
                }
            }
            if let ready { continuation.resume(returning: ready) }
        }
        return try result.get()
    }
}
