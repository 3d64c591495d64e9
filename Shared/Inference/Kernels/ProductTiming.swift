import Dispatch
import GGUF
import Measurement
import WideKernelsAVX2

/// Times the quantized products alone, on the model's own matrices: how the switch-over points
/// between the kernels (`MatMul.wideMinimumTokens`, `MatMul.fewTokenMaximum`) are chosen.
public enum ProductTiming {
    public struct Measurement: Sendable {
        /// The tensor's name in the file, its format and shape (`rows` outputs of `columns` inputs).
        public let matrix: String
        public let format: String
        public let rows: Int
        public let columns: Int
        public let tokens: Int
        /// Per kernel set: the kernel that ran, and the fastest call in seconds.
        public let results: [(kernels: KernelSet, path: String, seconds: Double)]
    }

    /// For the first block's matrices and the output matrix, one distinct (format, shape) each,
    /// and every count in `tokens`: each set in `sets` (runnable ones only) in turn, `calls` calls
    /// on one thread after one warm-up call, the fastest kept. Sets alternate call by call, so a
    /// machine whose speed drifts favours none of them. `report` sees each measurement as it is made.
    public static func measure(
        model: TransformerModel, tokens: [Int], sets: [KernelSet], calls: Int, report: (Measurement) -> Void
    ) {
        var seen = Set<String>()
        var matrices: [WeightMatrix] = []
        let first = model.blocks.first
        for m in (first?.qkv ?? []) + (first.map { [$0.attentionOutput] } ?? []) + (first?.gateUp ?? [])
            + (first.map { [$0.down] } ?? []) + [model.output]
        where seen.insert("\(m.type) \(m.rows)x\(m.columns)").inserted {
            matrices.append(m)
        }
        let sets = sets.filter { $0.runnable == $0 }
        for m in matrices {
            var scratch = [Float](repeating: 0, count: MatMul.scratchCount(m))
            for count in tokens where count >= 1 {
                var generator = SplitMix64(state: UInt64(count) << 32 | UInt64(m.rows))
                let x = (0..<(count * m.columns)).map { _ in Float.random(in: -3...3, using: &generator) }
                var out = [Float](repeating: 0, count: count * m.rows)
                let inputs = sets.map { _ in PreparedInput() }
                var best = [Double](repeating: .infinity, count: sets.count)
                x.withUnsafeBufferPointer { xs in
                    for (input, set) in zip(inputs, sets) {
                        input.prepare(xs.baseAddress!, rows: count, columns: m.columns, precision: .int8, kernels: set)
                    }
                    out.withUnsafeMutableBufferPointer { o in
                        scratch.withUnsafeMutableBufferPointer { s in
                            for call in 0...calls {
                                for (i, input) in inputs.enumerated() {
                                    let start = DispatchTime.now().uptimeNanoseconds
                                    MatMul.multiply(m, input, rowRange: 0..<m.rows, out: o.baseAddress!, outStride: m.rows, scratch: s.baseAddress!)
                                    let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                                    if call > 0 { best[i] = min(best[i], elapsed) }
                                }
                            }
                        }
                    }
                }
                let results = zip(zip(sets, inputs), best).map { pair, seconds in
                    (kernels: pair.0, path: path(m, pair.1), seconds: seconds)
                }
                report(Measurement(matrix: m.name, format: "\(m.type)", rows: m.rows, columns: m.columns, tokens: count, results: results))
            }
        }
    }

    /// Which kernel a prepared input runs on for this matrix.
    static func path(_ m: WeightMatrix, _ x: PreparedInput) -> String {
        guard x.quantized, [.q4_0, .q4_1, .q8_0, .q4_K, .q6_K].contains(m.type) else { return "float" }
        // The wide modules cover exactly the formats they have an entry for.
        let covered = MatMul.entry(WideKernelsAVX2.SingleTokenProduct.self, m.type) != nil
        if x.wide && covered { return "lanes" }
        if x.fewTokens && covered { return "few-token" }
        return "portable tiles"
    }
}
