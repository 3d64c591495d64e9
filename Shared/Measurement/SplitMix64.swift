/// SplitMix64, the one seeded generator of the project: small, fixed and documented, so that a
/// seed gives the same draws on every machine and Swift version (`SystemRandomNumberGenerator`
/// cannot be seeded). The sampler seeds one per (seed, token position) and the simulator one per
/// (seed, random quantity); how each derives the starting state is part of its own contract.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    /// Starts from `state` and discards the first output (so nearby states do not start alike).
    public init(state: UInt64) {
        self.state = state
        _ = next()
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform double in [0, 1) from the top 53 bits of one draw.
    public mutating func unit() -> Double { Double(next() >> 11) * 0x1p-53 }

    /// A uniform double in (0, 1]: never 0, so its logarithm is finite.
    public mutating func unitOpenBelow() -> Double { (Double(next() >> 11) + 1) * 0x1p-53 }
}
