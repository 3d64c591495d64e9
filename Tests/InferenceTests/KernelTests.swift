import Foundation
import Testing

@testable import Inference
import GGUF

/// Builds one-matrix GGUF images so kernels can be tested on hand-made and random blocks.
enum MatrixFixture {
    static func halfBits(_ v: Float) -> [UInt8] {
        let bits = Float16(v).bitPattern
        return [UInt8(bits & 0xFF), UInt8(bits >> 8)]
    }

    /// A GGUF file holding one `rows × columns` matrix of `type` with the given raw data.
    static func file(type: GGMLType, rows: Int, columns: Int, data: [UInt8]) throws -> (GGUFFile, WeightMatrix) {
        var b = GGUFBuilder()
        b.header(tensors: 1, metadata: 0)
        b.string("w")
        b.u32(2)
        b.u64(UInt64(columns))
        b.u64(UInt64(rows))
        b.u32(type.rawValue)
        b.u64(0)
        b.pad(to: 32)
        b.bytes += data
        let file = try GGUFFile(bytes: b.bytes)
        let info = try #require(file.tensor(named: "w"))
        return (file, try WeightMatrix(file: file, tensor: info))
    }

    /// Random but valid blocks: random quantized bytes with small finite half scales.
    static func randomData(type: GGMLType, rows: Int, columns: Int, rng: inout SplitMix64) -> [UInt8] {
        var data: [UInt8] = []
        let blocks = rows * columns / type.blockElements
        for _ in 0..<blocks {
            var block = (0..<type.blockBytes).map { _ in UInt8.random(in: 0...255, using: &rng) }
            func setHalf(_ offset: Int, _ v: Float) {
                let h = halfBits(v)
                block[offset] = h[0]
                block[offset + 1] = h[1]
            }
            switch type {
            case .f32:
                let v = Float.random(in: -2...2, using: &rng)
                block = withUnsafeBytes(of: v.bitPattern.littleEndian, Array.init)
            case .f16: setHalf(0, Float.random(in: -2...2, using: &rng))
            case .q8_0, .q4_0: setHalf(0, Float.random(in: 0.001...0.1, using: &rng))
            case .q4_1:
                setHalf(0, Float.random(in: 0.001...0.1, using: &rng))
                setHalf(2, Float.random(in: -0.5...0.5, using: &rng))
            case .q4_K:
                setHalf(0, Float.random(in: 0.001...0.05, using: &rng))
                setHalf(2, Float.random(in: 0.001...0.05, using: &rng))
            case .q6_K: setHalf(208, Float.random(in: 0.0001...0.01, using: &rng))
            default: break
            }
            data += block
        }
        return data
    }
}

@Suite("Quantized tensor kernels")
struct KernelTests {
    func dequantized(_ m: WeightMatrix, row: Int = 0) -> [Float] {
        var out = [Float](repeating: 0, count: m.columns)
        out.withUnsafeMutableBufferPointer { m.dequantizeRow(row, into: $0.baseAddress!) }
        return out
    }

    @Test("f32 and f16 values read back exactly")
    func plainTypes() throws {
        let values: [Float] = [1.5, -2.25, 0, 65504, 6.1035156e-05, -0.5]
        let f32 = values.flatMap { v in withUnsafeBytes(of: v.bitPattern.littleEndian, Array.init) }
        let (_, a) = try MatrixFixture.file(type: .f32, rows: 1, columns: 6, data: f32)
        #expect(dequantized(a) == values)
        let f16 = values.flatMap(MatrixFixture.halfBits)
        let (_, b) = try MatrixFixture.file(type: .f16, rows: 1, columns: 6, data: f16)
        #expect(dequantized(b) == values)
    }

    @Test("Q8_0, Q4_0 and Q4_1 blocks dequantise to scale × code (+ min)")
    func blockTypes() throws {
        let q8 = MatrixFixture.halfBits(0.5) + (0..<32).map { UInt8(bitPattern: Int8($0 * 8 - 128)) }
        let (_, a) = try MatrixFixture.file(type: .q8_0, rows: 1, columns: 32, data: q8)
        let expected8: [Float] = (0..<32).map { (i: Int) -> Float in Float(i * 8 - 128) * 0.5 }
        #expect(dequantized(a) == expected8)

        // Byte j holds value j in its low nibble and 15 − j in its high nibble.
        let nibbles = (0..<16).map { UInt8($0) | UInt8(15 - $0) << 4 }
        let codes: [Int] = Array(0..<16) + (0..<16).map { (i: Int) -> Int in 15 - i }
        let (_, b) = try MatrixFixture.file(type: .q4_0, rows: 1, columns: 32, data: MatrixFixture.halfBits(2) + nibbles)
        let expected40: [Float] = codes.map { (c: Int) -> Float in Float(c - 8) * 2 }
        #expect(dequantized(b) == expected40)
        let q41 = MatrixFixture.halfBits(0.5) + MatrixFixture.halfBits(-1) + nibbles
        let (_, c) = try MatrixFixture.file(type: .q4_1, rows: 1, columns: 32, data: q41)
        let expected41: [Float] = codes.map { (c: Int) -> Float in Float(c) * 0.5 - 1 }
        #expect(dequantized(c) == expected41)
    }

    @Test("Q4_K blocks: 6-bit sub-block scales and mins applied to each 32-value group")
    func q4K() throws {
        let scales: [UInt8] = [1, 2, 3, 4, 40, 50, 60, 63]
        let mins: [UInt8] = [5, 6, 7, 8, 20, 33, 47, 62]
        var packed = [UInt8](repeating: 0, count: 12)
        for j in 0..<4 {
            packed[j] = scales[j] | (scales[j + 4] >> 4) << 6
            packed[j + 4] = mins[j] | (mins[j + 4] >> 4) << 6
            packed[j + 8] = (scales[j + 4] & 0x0F) | (mins[j + 4] & 0x0F) << 4
        }
        let codes = (0..<256).map { ($0 * 7 + 3) % 16 }
        var qs = [UInt8](repeating: 0, count: 128)
        for i in 0..<256 {
            let group = i / 64
            let within = i % 64
            qs[group * 32 + within % 32] |= UInt8(codes[i]) << (within < 32 ? 0 : 4)
        }
        let block = MatrixFixture.halfBits(0.25) + MatrixFixture.halfBits(0.125) + packed + qs
        let (_, m) = try MatrixFixture.file(type: .q4_K, rows: 1, columns: 256, data: block)
        let expected: [Float] = (0..<256).map { (i: Int) -> Float in
            let scaled: Float = 0.25 * Float(scales[i / 32]) * Float(codes[i])
            return scaled - 0.125 * Float(mins[i / 32])
        }
        #expect(dequantized(m).maxAbsDifference(expected) < 1e-6)
    }

    @Test("Q6_K blocks: signed 6-bit codes with a signed scale per 16 values")
    func q6K() throws {
        let codes = (0..<256).map { ($0 * 13 + 5) % 64 }
        let scales = (0..<16).map { Int8($0 * 9 - 70) }
        var ql = [UInt8](repeating: 0, count: 128)
        var qh = [UInt8](repeating: 0, count: 64)
        for i in 0..<256 {
            let half = i / 128
            let quarter = (i % 128) / 32
            let l = i % 32
            let low = UInt8(codes[i] & 0x0F)
            let high = UInt8(codes[i] >> 4)
            let lowIndex = half * 64 + l + (quarter % 2 == 1 ? 32 : 0)
            ql[lowIndex] |= quarter < 2 ? low : low << 4
            qh[half * 32 + l] |= high << (2 * quarter)
        }
        let block = ql + qh + scales.map { UInt8(bitPattern: $0) } + MatrixFixture.halfBits(0.5)
        let (_, m) = try MatrixFixture.file(type: .q6_K, rows: 1, columns: 256, data: block)
        let expected: [Float] = (0..<256).map { (i: Int) -> Float in
            let scale: Float = 0.5 * Float(scales[i / 16])
            return scale * Float(codes[i] - 32)
        }
        #expect(dequantized(m) == expected)
    }

    /// Runs the kernel on `tokens` random activation rows over `rows` rows with `threads` pieces.
    func product(
        _ m: WeightMatrix, _ x: [Float], tokens: Int, precision: ActivationPrecision, kernels: KernelSet = .best
    ) -> [Float] {
        let input = PreparedInput()
        var out = [Float](repeating: .nan, count: tokens * m.rows)
        var scratch = [Float](repeating: 0, count: MatMul.scratchCount(m))
        x.withUnsafeBufferPointer { xs in
            input.prepare(xs.baseAddress!, rows: tokens, columns: m.columns, precision: precision, kernels: kernels)
            out.withUnsafeMutableBufferPointer { o in
                scratch.withUnsafeMutableBufferPointer { s in
                    // Split the rows unevenly to exercise ragged ranges.
                    let cut = m.rows / 3
                    MatMul.multiply(m, input, rowRange: 0..<cut, out: o.baseAddress!, outStride: m.rows, scratch: s.baseAddress!)
                    MatMul.multiply(
                        m, input, rowRange: cut..<m.rows, out: o.baseAddress!, outStride: m.rows, scratch: s.baseAddress!)
                }
            }
        }
        return out
    }

    @Test(
        "each type's product equals its reference dequantisation on random blocks",
        arguments: [GGMLType.f32, .f16, .q8_0, .q4_0, .q4_1, .q4_K, .q6_K])
    func productsMatchReference(type: GGMLType) throws {
        var rng = SplitMix64(seed: UInt64(type.rawValue) + 17)
        for (rows, columnBlocks, tokens) in [(7, 3, 1), (13, 2, 5), (5, 4, 9)] {
            let columns = columnBlocks * max(type.blockElements, 32) + (type.blockElements == 1 ? 3 : 0)
            let data = MatrixFixture.randomData(type: type, rows: rows, columns: columns, rng: &rng)
            let (_, m) = try MatrixFixture.file(type: type, rows: rows, columns: columns, data: data)
            let x = (0..<(tokens * columns)).map { _ in Float.random(in: -3...3, using: &rng) }
            for precision in ActivationPrecision.allCases {
                let fast = product(m, x, tokens: tokens, precision: precision)
                let quantizesInput = precision == .int8 && [.q8_0, .q4_0, .q4_1, .q4_K, .q6_K].contains(type)
                for j in 0..<rows {
                    let w = dequantized(m, row: j)
                    for t in 0..<tokens {
                        let xt = Array(x[(t * columns)..<((t + 1) * columns)])
                        // The activations the kernel multiplies: exact, or 8-bit with one scale per 32.
                        let used = quantizesInput ? Self.int8RoundTrip(xt) : xt
                        let exact = zip(w, used).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
                        let magnitude = zip(w, used).reduce(0.0) { $0 + abs(Double($1.0) * Double($1.1)) }
                        let got = Double(fast[t * rows + j])
                        let error = abs(got - exact)
                        let tolerance = 1e-5 * magnitude + 1e-6
                        #expect(
                            error <= tolerance,
                            "\(type) \(precision) rows \(rows) columns \(columns) token \(t) row \(j): \(got) vs \(exact)")
                        if quantizesInput {
                            let unquantized = zip(w, xt).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
                            let quantizationError = abs(got - unquantized)
                            #expect(quantizationError <= 0.02 * magnitude)
                        }
                    }
                }
            }
        }
    }

    @Test(
        "every wide kernel set this CPU runs equals the portable kernels bit for bit (ragged rows, tiles, chunks, one to seven tokens)",
        .enabled(if: KernelSet.supported.count > 1, "this CPU runs no wide kernel set: \(KernelSet.avx2.missingFlags)"),
        arguments: [GGMLType.q4_1, .q4_0, .q8_0, .q4_K, .q6_K])
    func wideEqualsPortable(type: GGMLType) throws {
        var rng = SplitMix64(seed: UInt64(type.rawValue) + 5)
        let blockColumns = max(type.blockElements, 32)
        let shapes = [
            (1, 1, 4), (5, 2, 2), (11, 3, 3), (9, 2, 16), (17, 3, 15), (37, 1, 17), (8, 2, 40), (3, 6, 33),
            (1, 1, 1), (7, 2, 1), (8, 1, 1), (23, 3, 1), (41, 2, 1), (13, 2, 9), (21, 1, 12),
            (6, 9, 5), (5, 19, 6), (9, 17, 7), (4, 10, 2), (3, 11, 3), (2, 8, 4), (5, 16, 1),
        ]
        for (rows, columnBlocks, tokens) in shapes {
            let columns = columnBlocks * blockColumns
            let data = MatrixFixture.randomData(type: type, rows: rows, columns: columns, rng: &rng)
            let (_, m) = try MatrixFixture.file(type: type, rows: rows, columns: columns, data: data)
            let x = (0..<(tokens * columns)).map { _ in Float.random(in: -40...40, using: &rng) }
            let portable = product(m, x, tokens: tokens, precision: .int8, kernels: .portable)
            for set in KernelSet.supported where set != .portable {
                let wide = product(m, x, tokens: tokens, precision: .int8, kernels: set)
                #expect(!wide.contains { $0.isNaN }, "\(type) \(set): an output was not written")
                #expect(wide == portable, "\(type) \(set) rows \(rows) columns \(columns) tokens \(tokens)")
            }
        }
    }

    @Test("activation quantization rounds half away from zero exactly, as the scalar statement does")
    func quantizerMatchesReference() {
        var rng = SplitMix64(seed: 31)
        var fast = [Int16](repeating: 0, count: 32)
        var slow = [Int16](repeating: 0, count: 32)
        for trial in 0..<2000 {
            var x = (0..<32).map { _ in Float.random(in: -50...50, using: &rng) }
            if trial % 3 == 0 {
                // Values landing exactly on k + 0.5 after scaling (amax 127 makes the scale 1).
                x = (0..<32).map { i in i == 0 ? 127 : Float(Int.random(in: -126...126, using: &rng)) + (i % 2 == 0 ? 0.5 : -0.5) }
            } else if trial % 3 == 1 {
                x = x.map { $0 * 1e-3 }
                x[Int.random(in: 0..<32, using: &rng)] = 0
            }
            let a = x.withUnsafeBufferPointer { xs in
                fast.withUnsafeMutableBufferPointer { ActivationQuantizer.quantizeBlock(xs.baseAddress!, into: $0.baseAddress!) }
            }
            let b = x.withUnsafeBufferPointer { xs in
                slow.withUnsafeMutableBufferPointer {
                    ActivationQuantizer.referenceQuantizeBlock(xs.baseAddress!, into: $0.baseAddress!)
                }
            }
            #expect(fast == slow && a.0 == b.0 && a.1 == b.1, "trial \(trial)")
        }
        let zeros = [Float](repeating: 0, count: 32)
        let result = zeros.withUnsafeBufferPointer { xs in
            fast.withUnsafeMutableBufferPointer { ActivationQuantizer.quantizeBlock(xs.baseAddress!, into: $0.baseAddress!) }
        }
        #expect(result == (0, 0) && fast.allSatisfy { $0 == 0 })
    }

    /// What 8-bit activation quantization turns a row into (scale × code per 32-value block).
    static func int8RoundTrip(_ x: [Float]) -> [Float] {
        var out: [Float] = []
        for b in stride(from: 0, to: x.count, by: 32) {
            let block = Array(x[b..<(b + 32)])
            let amax = block.map(abs).max() ?? 0
            let d = amax / 127
            out += block.map { d == 0 ? 0 : d * ($0 / d).rounded(.toNearestOrAwayFromZero) }
        }
        return out
    }

    @Test(
        "a row's product does not depend on the other rows of the batch",
        arguments: [GGMLType.q4_1, .q4_0, .q8_0, .q4_K, .q6_K, .f16], ActivationPrecision.allCases)
    func batchIndependence(type: GGMLType, precision: ActivationPrecision) throws {
        var rng = SplitMix64(seed: 99)
        let (rows, columns) = (9, 256)
        let data = MatrixFixture.randomData(type: type, rows: rows, columns: columns, rng: &rng)
        let (_, m) = try MatrixFixture.file(type: type, rows: rows, columns: columns, data: data)
        let x = (0..<(7 * columns)).map { _ in Float.random(in: -30...30, using: &rng) }
        let batch = product(m, x, tokens: 7, precision: precision)
        for t in 0..<7 {
            let single = product(m, Array(x[(t * columns)..<((t + 1) * columns)]), tokens: 1, precision: precision)
            #expect(Array(batch[(t * rows)..<((t + 1) * rows)]) == single)
        }
    }
}

@Suite("Product timing")
struct ProductTimingTests {
    @Test("bench inference --products times every distinct matrix of the model on every kernel set, naming the kernel that ran")
    func timesTheModelsMatrices() throws {
        let model = try TransformerModel(file: TestFiles.modelFile())
        var seen: [ProductTiming.Measurement] = []
        ProductTiming.measure(model: model, tokens: [1, 3, 5], sets: KernelSet.supported, calls: 1) { seen.append($0) }
        // SmolLM2: q/o 576×576, k/v 192×576, gate/up 1536×576, down 576×1536, output 49152×576.
        let shapes = Set(seen.map { "\($0.format) \($0.rows)×\($0.columns)" })
        #expect(shapes.count == 5, "\(shapes)")
        #expect(seen.count == shapes.count * 3)
        for m in seen {
            #expect(m.results.map(\.kernels) == KernelSet.supported)
            #expect(m.results.allSatisfy { $0.seconds > 0 && $0.seconds.isFinite })
            #expect(m.results.first { $0.kernels == .portable }?.path == "portable tiles")
            if let avx2 = m.results.first(where: { $0.kernels == .avx2 }) {
                #expect(avx2.path == (m.tokens < MatMul.wideMinimumTokens(.avx2) ? "few-token" : "lanes"), "\(m.matrix) \(m.tokens)")
            }
        }
    }
}
