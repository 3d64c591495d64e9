import Synchronization
import Testing

@testable import Inference

@Suite("Compute pool")
struct ComputePoolTests {
    @Test("every index of every section runs exactly once, for any thread count", arguments: [1, 2, 3, 5])
    func eachIndexOnce(threads: Int) {
        let pool = ComputePool(threads: threads)
        var rng = SplitMix64(seed: UInt64(threads))
        for _ in 0..<2000 {
            let count = Int.random(in: 0...17, using: &rng)
            let hits = UnsafeMutablePointer<Int>.allocate(capacity: max(count, 1))
            hits.initialize(repeating: 0, count: max(count, 1))
            let shared = SharedPointer(hits)
            pool.forEach(count) { i in shared.base[i] += 1 }
            #expect((0..<count).allSatisfy { hits[$0] == 1 })
            hits.deallocate()
        }
        let total = Atomic<Int>(0)
        pool.forRanges(1000) { range in total.add(range.count, ordering: .relaxed) }
        #expect(total.load(ordering: .relaxed) == 1000)
    }

    @Test("pools start and stop cleanly")
    func lifecycle() {
        for threads in 1...4 {
            let pool = ComputePool(threads: threads)
            pool.forEach(8) { _ in }
        }
    }
}
