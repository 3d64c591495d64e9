/// A confirmed publish in flight; `wait()` returns once the broker acked it.
public struct AMQPPendingConfirm: Sendable {
    let promise: Promise<Void>

    public func wait() async throws(AMQPError) { try await promise.value() }
}
