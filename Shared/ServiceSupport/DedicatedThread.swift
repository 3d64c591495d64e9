import Foundation

/// A thread of its own for blocking work (model computation), so that long synchronous calls
/// never occupy Swift's cooperative pool. Work items run one at a time, in submission order.
public final class DedicatedThread: @unchecked Sendable {
    // Sendable: `queue` and `closed` are only touched under `condition`.
    private let condition = NSCondition()
    private var queue: [@Sendable () -> Void] = []
    private var closed = false

    public init(name: String) {
        let thread = Thread { [condition] in
            while true {
                condition.lock()
                while self.queue.isEmpty && !self.closed { condition.wait() }
                if self.queue.isEmpty && self.closed {
                    condition.unlock()
                    return
                }
                let work = self.queue.removeFirst()
                condition.unlock()
                work()
            }
        }
        thread.name = name
        thread.stackSize = 8 << 20
        thread.start()
    }

    /// Runs `body` on the thread and returns its result.
    public func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            submit { continuation.resume(returning: body()) }
        }
    }

    /// Queues `body` without waiting for it.
    public func submit(_ body: @escaping @Sendable () -> Void) {
        condition.lock()
        queue.append(body)
        condition.signal()
        condition.unlock()
    }

    /// Lets the thread finish its queued work and exit.
    public func close() {
        condition.lock()
        closed = true
        condition.signal()
        condition.unlock()
    }
}
