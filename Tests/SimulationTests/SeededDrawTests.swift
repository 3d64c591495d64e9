@testable import Inference
@testable import Simulation
import Testing

/// Seeded outputs are part of the determinism contract: the same seed gives the same sampled
/// tokens and the same simulated run on every machine and in every release. The first 1,000 draws
/// of the sampler for three seeds, and of the simulator for three (seed, stream) pairs, are pinned
/// here (computed from the SplitMix64 definition and the two seedings); a change to the generator
/// or to how a draw is seeded fails here before it changes anyone's outputs.
@Suite("Seeded draws: the sampler's and the simulator's first 1,000 draws are pinned")
struct SeededDrawTests {
    /// FNV-1a over the little-endian bytes of each value.
    static func digest(_ values: [UInt64]) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for value in values {
            for byte in 0..<8 {
                hash ^= (value >> (8 * UInt64(byte))) & 0xFF
                hash = hash &* 0x0000_0100_0000_01B3
            }
        }
        return hash
    }

    @Test(
        "one draw per position, 1,000 positions",
        arguments: [
            (UInt64(0), UInt64(0x76b2_0ebd_bc2d_0039), [UInt64(3_886_858_653_415_212), 238_094_247_788_840]),
            (7, 0x0d53_621e_bea7_e7b8, [151_215_513_962_380, 8_966_782_917_438_908]),
            (20_261_207, 0x28a8_a5d7_3dac_a8a8, [913_047_945_808_033, 997_332_406_566_823]),
        ])
    func samplerDraws(seed: UInt64, expectedDigest: UInt64, firstTwo: [UInt64]) {
        // nextUnit() is (53-bit draw) × 2⁻⁵³: recover the 53 bits exactly.
        let draws = (0..<1000).map { position in
            var generator = SamplingRandom(seed: seed, position: position)
            return UInt64(generator.nextUnit() * 0x1p53)
        }
        #expect(Array(draws.prefix(2)) == firstTwo)
        #expect(Self.digest(draws) == expectedDigest, "seed \(seed): digest \(String(Self.digest(draws), radix: 16))")
    }

    @Test(
        "1,000 draws of a stream",
        arguments: [
            (UInt64(0), UInt64(0), UInt64(0x4575_1008_ee0b_6188), [UInt64(7_960_286_522_194_355_700), 487_617_019_471_545_679]),
            (1, 3, 0xef4f_5833_24ad_72d5, [5_135_510_087_813_718_029, 1_068_456_450_875_153_090]),
            (20_261_207, 11, 0x3c62_8f57_d8ca_000c, [10_936_199_704_344_555_015, 3_535_690_439_845_510_172]),
        ])
    func streamDraws(seed: UInt64, stream: UInt64, expectedDigest: UInt64, firstTwo: [UInt64]) {
        var generator = SimulationRandom(seed: seed, stream: stream)
        let draws = (0..<1000).map { _ in generator.next() }
        #expect(Array(draws.prefix(2)) == firstTwo)
        #expect(Self.digest(draws) == expectedDigest, "digest \(String(Self.digest(draws), radix: 16))")
    }
}
