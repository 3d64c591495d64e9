/// The timing of one emulated link (docs/design.md §6, §11): a FIFO that serialises each message's
/// bytes at the link's bandwidth behind every message admitted before it, then adds the
/// propagation latency. Whoever sends, all of the link's traffic shares its capacity, as in the
/// planner's link cost `(P + O)·act_bytes / bandwidth`. Pure: the caller passes the time in.
public struct LinkSchedule: Sendable {
    /// Bytes per second of the emulated link; nil for a pure delay (the return path).
    public let bandwidthBytesPerSecond: Double?
    /// One-way propagation delay of the emulated link.
    public let latencySeconds: Double
    public let timeScale: TimeScale
    /// Wall-clock time at which the link has serialised everything admitted so far.
    public private(set) var freeAt = -Double.infinity
    /// Wall-clock seconds spent serialising, for the link's utilisation.
    public private(set) var busySeconds = 0.0

    public init(bandwidthBytesPerSecond: Double?, latencySeconds: Double, timeScale: TimeScale) {
        self.bandwidthBytesPerSecond = bandwidthBytesPerSecond
        self.latencySeconds = latencySeconds
        self.timeScale = timeScale
    }

    /// One message's passage, in wall-clock seconds.
    public struct Passage: Sendable, Equatable {
        /// When its first byte goes on the wire (after the messages ahead of it).
        public var startsAt: Double
        /// When its last byte has been sent: the link is free for the next message.
        public var sentAt: Double
        /// When it reaches the far end: `sentAt` + latency. Never earlier than an earlier message's.
        public var arrivesAt: Double
    }

    /// Wall-clock seconds `bytes` take on the wire.
    public func serialisationSeconds(bytes: Int) -> Double {
        guard let bandwidthBytesPerSecond else { return 0 }
        return timeScale.wallSeconds(Double(max(0, bytes)) / bandwidthBytesPerSecond)
    }

    /// Admits a message of `bytes` that reached the link at `now`.
    public mutating func admit(bytes: Int, at now: Double) -> Passage {
        let start = max(now, freeAt)
        let transfer = serialisationSeconds(bytes: bytes)
        freeAt = start + transfer
        busySeconds += transfer
        return Passage(startsAt: start, sentAt: freeAt, arrivesAt: freeAt + timeScale.wallSeconds(latencySeconds))
    }
}
