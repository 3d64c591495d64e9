import Foundation
import Measurement

/// The simulator's draws: SplitMix64 (the project's one seeded generator) started from the seed
/// mixed with a stream number. Each random quantity of a run (arrivals, lengths, heartbeat phases)
/// draws from its own stream, so changing one system's routing never shifts another's arrivals:
/// every system sees the same requests.
struct SimulationRandom: RandomNumberGenerator {
    private var generator: SplitMix64

    init(seed: UInt64, stream: UInt64) {
        generator = SplitMix64(state: seed ^ (stream &* 0xD1B5_4A32_D192_ED03))
    }

    mutating func next() -> UInt64 { generator.next() }

    /// A uniform double in (0, 1]: never 0, so its logarithm is finite.
    mutating func unitOpenBelow() -> Double { generator.unitOpenBelow() }

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
