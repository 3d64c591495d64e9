/// Names one request's KV cache on a stage: the scheduler's key and the attempt number, so a
/// failover attempt never reads the caches of the attempt it replaces.
public struct KVCacheID: Hashable, Sendable, CustomStringConvertible {
    public let key: String
    public let attempt: Int

    public init(key: String, attempt: Int) {
        self.key = key
        self.attempt = attempt
    }

    public var description: String { "\(key)#\(attempt)" }
}

/// Keys and values of one request for the blocks of one executor, stored by position.
///
/// Positions `0..<length` are valid. A step starting at `p ≤ length` writes positions `p…` (a
/// replayed step overwrites) and sets `length` to its end, so attention for position `p` reads
/// exactly positions `0...p` of this request.
final class KVCache {
    let blockCount: Int
    let width: Int
    private(set) var capacity = 0
    var length = 0
    private(set) var keys: [UnsafeMutablePointer<Float>] = []
    private(set) var values: [UnsafeMutablePointer<Float>] = []

    /// Positions are allocated in multiples of this many, to grow rarely.
    static let positionGranule = 64

    init(blockCount: Int, width: Int) {
        self.blockCount = blockCount
        self.width = width
    }

    /// Bytes held (allocated) by this cache.
    var bytes: Int { capacity * width * 4 * 2 * blockCount }

    static func bytes(positions: Int, blockCount: Int, width: Int) -> Int {
        let rounded = (positions + positionGranule - 1) / positionGranule * positionGranule
        return rounded * width * 4 * 2 * blockCount
    }

    /// Makes room for `positions` positions, keeping the first `length`.
    func reserve(positions: Int) {
        guard positions > capacity else { return }
        let newCapacity = (positions + Self.positionGranule - 1) / Self.positionGranule * Self.positionGranule
        func grow(_ old: [UnsafeMutablePointer<Float>]) -> [UnsafeMutablePointer<Float>] {
            (0..<blockCount).map { b in
                let fresh = UnsafeMutablePointer<Float>.allocate(capacity: newCapacity * width)
                if b < old.count {
                    fresh.update(from: old[b], count: length * width)
                    old[b].deallocate()
                }
                return fresh
            }
        }
        keys = grow(keys)
        values = grow(values)
        capacity = newCapacity
    }

    deinit {
        for p in keys { p.deallocate() }
        for p in values { p.deallocate() }
    }
}
