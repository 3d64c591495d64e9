/// Byte-pair merging of one pre-tokenized piece, lowest merge rank first.
///
/// Works on token ids rather than strings: each byte starts as the token that spells it, and a merge
/// rule `(left, right) → merged` is looked up by the pair of ids. Ties in rank go to the leftmost
/// pair, so `aaa` with the rule `a a` becomes `aa a`.
struct BytePairMerger: Sendable {
    /// A merge rule's priority (lower merges first) and the token it produces.
    struct Merge: Sendable {
        var rank: Int32
        var merged: Int32
    }

    /// The token spelling each byte, or -1 when the vocabulary has none (the byte is dropped).
    let byteTokenIDs: [Int32]
    /// Merge rules keyed by `key(left, right)`.
    typealias Table = [UInt64: Merge]

    /// The model's merge rules.
    let merges: Table

    @inline(__always) static func key(_ left: Int32, _ right: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
    }

    /// The tokens of one piece, appended to `output`; bytes without a token are left out.
    func merge(_ bytes: some Collection<UInt8>, into output: inout [Int32]) {
        var ids = bytes.map { byteTokenIDs[Int($0)] }
        if ids.count <= 1 {
            if let only = ids.first, only >= 0 { output.append(only) }
            return
        }
        // Symbols form a linked list over `ids`; a merged-away symbol gets id -2.
        let count = ids.count
        var next = Array(1...count)
        var previous = Array(-1..<(count - 1))
        var queue = MergeQueue()
        for index in 0..<(count - 1) {
            if let merge = merges[Self.key(ids[index], ids[index + 1])] {
                queue.push(rank: merge.rank, position: index)
            }
        }
        while let (rank, left) = queue.pop() {
            let right = next[left]
            guard ids[left] != -2, right < count,
                let merge = merges[Self.key(ids[left], ids[right])], merge.rank == rank
            else { continue }
            ids[left] = merge.merged
            ids[right] = -2
            let after = next[right]
            next[left] = after
            if after < count { previous[after] = left }
            let before = previous[left]
            if before >= 0, let merge = merges[Self.key(ids[before], ids[left])] {
                queue.push(rank: merge.rank, position: before)
            }
            if after < count, let merge = merges[Self.key(ids[left], ids[after])] {
                queue.push(rank: merge.rank, position: left)
            }
        }
        var index = 0
        while index < count {
            if ids[index] >= 0 { output.append(ids[index]) }
            index = next[index]
        }
    }
}

/// A binary min-heap of candidate merges ordered by (rank, position).
///
/// Entries go stale when a neighbour merges first; the merger re-checks each one as it pops.
private struct MergeQueue {
    private var entries: [UInt64] = []

    mutating func push(rank: Int32, position: Int) {
        entries.append(UInt64(UInt32(bitPattern: rank)) << 32 | UInt64(UInt32(truncatingIfNeeded: position)))
        var child = entries.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            if entries[parent] <= entries[child] { break }
            entries.swapAt(parent, child)
            child = parent
        }
    }

    mutating func pop() -> (rank: Int32, position: Int)? {
        guard let top = entries.first else { return nil }
        let last = entries.removeLast()
        if !entries.isEmpty {
            entries[0] = last
            var parent = 0
            while true {
                let left = 2 * parent + 1
                if left >= entries.count { break }
                let right = left + 1
                let smaller = right < entries.count && entries[right] < entries[left] ? right : left
                if entries[parent] <= entries[smaller] { break }
                entries.swapAt(parent, smaller)
                parent = smaller
            }
        }
        return (Int32(bitPattern: UInt32(top >> 32)), Int(UInt32(truncatingIfNeeded: top)))
    }
}
