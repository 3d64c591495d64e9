import Measurement
import Testing

/// The one definition of a percentile, mean and seeded generator every figure uses.
@Suite("Measurement: percentiles, means, the seeded generator")
struct MeasurementTests {
    @Test("nearest rank: always a measured value, rank ⌈p·n⌉ clamped to 1…n")
    func nearestRank() {
        let values = (1...10).map(Double.init).shuffled()
        #expect(Percentile.of(values, 0.5) == 5)
        #expect(Percentile.of(values, 0.95) == 10)
        #expect(Percentile.of(values, 0.91) == 10)
        #expect(Percentile.of(values, 0.9) == 9)
        #expect(Percentile.of(values, 0) == 1)
        #expect(Percentile.of(values, 1) == 10)
        #expect(Percentile.of([], 0.5) == 0)
        #expect(Percentile.of(sorted: [2, 4, 8], 0.5) == 4)
        // Three runs: the median is the middle one.
        #expect(Percentile.of([30, 10, 20], 0.5) == 20)
    }

    @Test("mean of none is 0")
    func means() {
        #expect(mean([]) == 0)
        #expect(mean([1, 2, 3, 6]) == 3)
    }

    @Test("SplitMix64 matches its published test vector and draws units in [0, 1)")
    func splitMix() {
        // SplitMix64 from state 0: outputs 0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, … (the first is
        // discarded by init, as both callers always have).
        var generator = SplitMix64(state: 0)
        #expect(generator.next() == 0x6E78_9E6A_A1B9_65F4)
        var draws = SplitMix64(state: 42)
        for _ in 0..<1000 {
            let unit = draws.unit()
            #expect(unit >= 0 && unit < 1)
            let open = draws.unitOpenBelow()
            #expect(open > 0 && open <= 1)
        }
    }
}
