/// A binary min-heap of events by time, ties broken by insertion order so runs are deterministic.
///
/// Events are plain values without references, so the heap moves bytes and never touches
/// reference counts: it is the simulator's inner loop.
struct EventQueue {
    private var heap: [Event] = []
    private var nextSequence: UInt64 = 0

    var isEmpty: Bool { heap.isEmpty }
    var count: Int { heap.count }

    init(capacity: Int = 1024) { heap.reserveCapacity(capacity) }

    mutating func push(_ event: Event) {
        var event = event
        event.sequence = nextSequence
        nextSequence &+= 1
        heap.append(event)
        // Sift up by moving parents down into the hole, then place the event once.
        heap.withUnsafeMutableBufferPointer { buffer in
            var child = buffer.count - 1
            while child > 0 {
                let parent = (child - 1) / 2
                if !Self.precedes(event, buffer[parent]) { break }
                buffer[child] = buffer[parent]
                child = parent
            }
            buffer[child] = event
        }
    }

    mutating func pop() -> Event? {
        guard let last = heap.popLast() else { return nil }
        guard !heap.isEmpty else { return last }
        return heap.withUnsafeMutableBufferPointer { buffer in
            let top = buffer[0]
            let count = buffer.count
            // Sift the last event down from the root by moving smaller children up into the hole.
            var parent = 0
            while true {
                let left = 2 * parent + 1
                if left >= count { break }
                let right = left + 1
                var smallest = left
                if right < count, Self.precedes(buffer[right], buffer[left]) { smallest = right }
                if !Self.precedes(buffer[smallest], last) { break }
                buffer[parent] = buffer[smallest]
                parent = smallest
            }
            buffer[parent] = last
            return top
        }
    }

    @inline(__always)
    private static func precedes(_ a: Event, _ b: Event) -> Bool {
        a.time < b.time || (a.time == b.time && a.sequence < b.sequence)
    }
}

/// One thing that happens at a simulated time.
struct Event {
    enum Kind: UInt8 {
        /// The next open-loop arrival (or burst).
        case arrival
        /// A node finished its batch.
        case batchDone
        /// A step reaches a node's queue.
        case stepArrives
        /// A step enters a link's FIFO (the second or later link of a stage that skips a tier).
        case linkEnter
        /// A sampled token (or step error) reaches the scheduler.
        case sampled
        case heartbeat
        /// A drift event at a fixed time.
        case drift
    }

    var time: Double
    var sequence: UInt64 = 0
    var kind: Kind
    /// Node, link or drift index, by kind.
    var target: Int32
    var step: SimStep

    init(time: Double, kind: Kind, target: Int32, step: SimStep = .none) {
        self.time = time
        self.kind = kind
        self.target = target
        self.step = step
    }
}

/// One pass of one request through one stage, as a value: what a step message carries.
struct SimStep {
    var request: Int32
    var attempt: Int32
    var stage: Int32
    /// Position of the first token.
    var position: Int32
    var tokens: Int32
    var isPrefill: Bool
    /// The last prefill chunk or a decode step: its sampled token is a generated token. A step
    /// sent back to the scheduler with this false is a refusal.
    var yieldsToken: Bool

    static let none = SimStep(request: -1, attempt: 0, stage: 0, position: 0, tokens: 0, isPrefill: false, yieldsToken: false)
}
