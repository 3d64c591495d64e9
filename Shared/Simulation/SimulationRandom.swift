import Foundation

/// SplitMix64: a small, fixed generator so that a seed gives the same run on every machine and
/// Swift version (`SystemRandomNumberGenerator` cannot be seeded). Each random quantity of a run
/// (arrivals, lengths, heartbeat phases) draws from its own stream, so changing one system's
/// routing never shifts another's arrivals: every system sees the same requests.
struct SimulationRandom: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64, stream: UInt64) {
        state = seed ^ (stream &* 0xD1B5_4A32_D192_ED03)
        _ = next()
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform double in (0, 1]: never 0, so its logarithm is finite.
    mutating func unitOpenBelow() -> Double { (Double(next() >> 11) + 1) * 0x1p-53 }

    /// An exponential draw with the given mean.
    mutating func exponential(mean: Double) -> Double { -mean * log(unitOpenBelow()) }

    /// A geometric draw on 1, 2, … with the given mean (≥ 1).
    mutating func geometric(mean: Double) -> Int {
        guard mean > 1 else { return 1 }
        let draw = (log(unitOpenBelow()) / log(1 - 1 / mean)).rounded(.down)
        return 1 + Int(min(draw, 1e9))
    }

    /// A uniform integer in `1 ... 2·mean − 1` (mean `mean`).
    mutating func uniformAround(mean: Int) -> Int {
        guard mean > 1 else { return max(mean, 1) }
        return 1 + Int(next() % UInt64(2 * mean - 1))
    }
}
