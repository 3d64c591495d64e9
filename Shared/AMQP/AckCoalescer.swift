/// Turns the single acks a consumer issues between two turns of its connection's thread into as
/// few frames as possible: one `multiple` ack for the longest run of settled tags from the oldest
/// unsettled delivery, single acks for the rest. A pure value: the thread feeds it and sends what
/// `flush()` returns.
///
/// Delivery tags on a channel count up from 1, and a `multiple` ack settles every outstanding
/// delivery up to its tag, so one is only safe when every tag below it is settled or being acked.
package struct AckCoalescer {
    /// Every tag below this is settled (acked, nacked or rejected) on the wire.
    package private(set) var settledBelow: UInt64 = 1
    /// Tags at or above `settledBelow` already settled one by one.
    private var settledAbove: Set<UInt64> = []
    private var pending: [UInt64] = []

    package init() {}

    package var hasPending: Bool { !pending.isEmpty }

    /// Queues a single ack.
    package mutating func add(_ tag: UInt64) { pending.append(tag) }

    /// Records a settlement sent directly (a nack, a reject, or an ack with `multiple`); flush first.
    package mutating func sent(_ tag: UInt64, multiple: Bool) {
        if multiple {
            settledBelow = max(settledBelow, tag + 1)
            settledAbove = settledAbove.filter { $0 >= settledBelow }
        } else if tag >= settledBelow {
            settledAbove.insert(tag)
            advance()
        }
    }

    /// The acks to send now, as (tag, multiple); duplicates and already-settled tags are dropped.
    package mutating func flush() -> [(tag: UInt64, multiple: Bool)] {
        guard !pending.isEmpty else { return [] }
        pending.sort()
        var frames: [(tag: UInt64, multiple: Bool)] = []
        var index = 0
        var runEnd: UInt64? = nil
        while true {
            while index < pending.count && pending[index] < settledBelow { index += 1 }
            if index < pending.count && pending[index] == settledBelow {
                runEnd = settledBelow
                settledBelow += 1
            } else if settledAbove.remove(settledBelow) != nil {
                settledBelow += 1
            } else {
                break
            }
        }
        if let runEnd { frames.append((tag: runEnd, multiple: true)) }
        var previous: UInt64 = 0
        for tag in pending[index...] where tag != previous && !settledAbove.contains(tag) {
            frames.append((tag: tag, multiple: false))
            settledAbove.insert(tag)
            previous = tag
        }
        pending.removeAll(keepingCapacity: true)
        return frames
    }

    private mutating func advance() {
        while settledAbove.remove(settledBelow) != nil { settledBelow += 1 }
    }
}
