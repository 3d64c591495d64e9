#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import Measurement

/// The knobs of one request's sampling.
public struct SamplingParameters: Sendable, Equatable {
    /// 0 (or less) means greedy: always the highest logit.
    public var temperature: Double
    /// Keep only the `topK` most likely tokens; 0 keeps all.
    public var topK: Int
    /// Keep the smallest set of most likely tokens whose probability reaches `topP`; 1 keeps all.
    public var topP: Double
    public var seed: UInt64

    public init(temperature: Double = 0, topK: Int = 0, topP: Double = 1, seed: UInt64 = 0) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.seed = seed
    }

    public static let greedy = SamplingParameters()
}

/// A chosen token and its log-probability under the unmodified distribution (temperature 1).
public struct SampledToken: Sendable, Equatable {
    public let token: Int32
    public let logprob: Double
}

/// Picks the next token as a pure function of (logits, parameters, position).
///
/// The random draw comes from a generator seeded by (seed, position) alone, so any process (the
/// last pipeline stage, a single-process run, a failover attempt) draws the same token for the same
/// logits. Ties go to the lower token id. Tokens whose probability is below e⁻⁴⁰ of the most
/// likely one's are never sampled (they could not change a draw in double precision anyway).
///
/// `position` is the sequence position the sampled token will occupy (prompt length for the
/// first generated token), so every caller seeds the same draw for the same token.
public enum Sampler {
    public static func sample(_ logits: some Collection<Float>, parameters: SamplingParameters, position: Int) -> SampledToken {
        let values = Array(logits)
        guard !values.isEmpty else { return SampledToken(token: 0, logprob: 0) }
        return values.withUnsafeBufferPointer { sample($0, parameters: parameters, position: position) }
    }

    static func sample(_ values: UnsafeBufferPointer<Float>, parameters: SamplingParameters, position: Int) -> SampledToken {
        var best = 0
        for i in values.indices where values[i] > values[best] { best = i }
        let maximum = values[best]
        guard maximum.isFinite else { return SampledToken(token: Int32(best), logprob: 0) }
        let logNormaliser = Double(maximum) + log(ExpSum.sum(values, subtracting: maximum, scale: 1))
        func logprob(_ i: Int) -> Double { Double(values[i]) - logNormaliser }

        guard parameters.temperature > 0 else {
            return SampledToken(token: Int32(best), logprob: logprob(best))
        }
        let inverseTemperature = Float(1 / parameters.temperature)
        // Candidates: within 40 nats of the best at this temperature, by logit descending, id ascending.
        let floor = maximum - 40 / inverseTemperature
        var candidates: [(index: Int, weight: Double)] = []
        for i in values.indices where values[i] >= floor {
            candidates.append((i, Double(ExpSum.exp((values[i] - maximum) * inverseTemperature))))
        }
        candidates.sort { a, b in
            values[a.index] != values[b.index] ? values[a.index] > values[b.index] : a.index < b.index
        }
        if parameters.topK > 0, candidates.count > parameters.topK {
            candidates.removeLast(candidates.count - parameters.topK)
        }
        var total = candidates.reduce(0) { $0 + $1.weight }
        if parameters.topP < 1 {
            var cumulative = 0.0
            var keep = candidates.count
            for (n, c) in candidates.enumerated() {
                cumulative += c.weight
                if cumulative >= parameters.topP * total {
                    keep = n + 1
                    break
                }
            }
            candidates.removeLast(candidates.count - keep)
            total = candidates.reduce(0) { $0 + $1.weight }
        }
        var generator = SamplingRandom(seed: parameters.seed, position: position)
        let target = generator.nextUnit() * total
        var cumulative = 0.0
        for c in candidates {
            cumulative += c.weight
            if target < cumulative { return SampledToken(token: Int32(c.index), logprob: logprob(c.index)) }
        }
        let last = candidates[candidates.count - 1].index
        return SampledToken(token: Int32(last), logprob: logprob(last))
    }
}

/// A vectorised exponential for softmax normalisers over the whole vocabulary (49k values per
/// sampled token, where a libm call per value would cost more than the model's last layer).
///
/// Pure float arithmetic in a fixed order, so results are identical in every process; accurate to
/// a few units in the last place for arguments in [−87, 0], which is all softmax needs.
enum ExpSum {
    /// Σ exp((x − shift)·scale) over `values`, lanes summed in a fixed order, in double precision.
    static func sum(_ values: UnsafeBufferPointer<Float>, subtracting shift: Float, scale: Float) -> Double {
        guard let base = values.baseAddress else { return 0 }
        var lanes = SIMD8<Double>()
        var i = 0
        let raw = UnsafeRawPointer(base)
        while i + 8 <= values.count {
            let x = raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            lanes += SIMD8<Double>(exp8((x - shift) * scale))
            i += 8
        }
        var total = ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5])) + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]))
        while i < values.count {
            total += Double(exp((values[i] - shift) * scale))
            i += 1
        }
        return total
    }

    /// exp of one value by the same arithmetic as `exp8`.
    static func exp(_ x: Float) -> Float { exp8(SIMD8<Float>(repeating: x))[0] }

    /// exp(x) = 2ⁿ·e^r with n = round(x/ln 2), |r| ≤ ln2/2, e^r by a degree-6 polynomial.
    @inline(__always)
    static func exp8(_ x: SIMD8<Float>) -> SIMD8<Float> {
        let clamped = pointwiseMax(pointwiseMin(x, SIMD8(repeating: 88)), SIMD8(repeating: -87))
        // Round to nearest by adding 1.5·2²³: n then sits in the low mantissa bits of `shifted`.
        let magic = SIMD8<Float>(repeating: 12_582_912)
        let shifted = clamped * 1.442_695_04 + magic
        let n = shifted - magic
        let r = (clamped - n * 0.693_145_75) - n * 1.428_606_8e-6
        var p = SIMD8<Float>(repeating: 1.0 / 720)
        p = p * r + 1.0 / 120
        p = p * r + 1.0 / 24
        p = p * r + 1.0 / 6
        p = p * r + 0.5
        p = p * r + 1
        p = p * r + 1
        let exponent = unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- 0x4B40_0000
        let scale = (exponent &+ 127) &<< 23
        return p * unsafeBitCast(scale, to: SIMD8<Float>.self)
    }
}

/// The sampler's draw for one token: SplitMix64 (the project's one seeded generator) started from
/// the seed mixed with the token's position, so a draw depends on (seed, position) only and is
/// the same in every process, on every platform and in every Swift version.
struct SamplingRandom {
    private var generator: SplitMix64

    init(seed: UInt64, position: Int) {
        generator = SplitMix64(state: seed ^ (UInt64(truncatingIfNeeded: position) &* 0x9E37_79B9_7F4A_7C15))
    }

    /// A uniform double in [0, 1) with 53 random bits.
    mutating func nextUnit() -> Double { generator.unit() }
}
