#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Runs a contiguous range of a model's decoder blocks on steps, holding each request's KV cache.
///
/// This is what a stage worker owns: blocks `a..<b` (the embedding joins when `a == 0`, the final
/// norm and LM head when `b` is the block count), one KV cache per `KVCacheID`, and `run` for one
/// step or a batch of steps of different requests. Running the ranges of any partition one after
/// another gives bit-identical logits to one range holding the whole model (DESIGN §8): every
/// output row is computed by a fixed sequence of operations that depends only on that row's inputs
/// and on the cache positions it attends to.
///
/// Not thread-safe: one owner calls it; it uses `options.threads` threads inside each call.
public final class BlockRangeExecutor {
    public let model: TransformerModel
    public let blocks: Range<Int>
    public let options: ExecutionOptions
    private var caches: [KVCacheID: KVCache] = [:]
    private let pool: ComputePool
    private let workspace = Workspace()

    /// Whether the range starts with the embedding (its steps carry token ids).
    public var takesTokens: Bool { blocks.lowerBound == 0 }
    /// Whether the range ends with the LM head (its outputs are logits).
    public var producesLogits: Bool { blocks.upperBound == model.config.blockCount }

    public init(model: TransformerModel, blocks: Range<Int>, options: ExecutionOptions = ExecutionOptions()) throws {
        guard blocks.lowerBound >= 0, blocks.upperBound <= model.config.blockCount, !blocks.isEmpty else {
            throw InferenceError.badInput(
                "block range \(blocks.lowerBound)..<\(blocks.upperBound) is not a non-empty range within 0..<\(model.config.blockCount)")
        }
        self.model = model
        self.blocks = blocks
        self.options = options
        pool = ComputePool(threads: options.threads)
    }

    /// An executor for the whole model (embedding, every block, head).
    public convenience init(model: TransformerModel, options: ExecutionOptions = ExecutionOptions()) throws {
        try self.init(model: model, blocks: 0..<model.config.blockCount, options: options)
    }

    // MARK: Caches

    /// Frees a request's cache (no effect when it holds none).
    public func release(_ cache: KVCacheID) { caches[cache] = nil }

    /// Positions held for `cache` (0 when it holds none).
    public func heldPositions(_ cache: KVCacheID) -> Int { caches[cache]?.length ?? 0 }

    /// Requests with a cache here.
    public var cacheIDs: [KVCacheID] { Array(caches.keys) }

    /// Bytes of KV cache memory held by every request on this executor.
    public var kvBytesUsed: Int { caches.values.reduce(0) { $0 + $1.bytes } }

    /// Bytes one request of `positions` positions needs on this range.
    public func kvBytes(positions: Int) -> Int {
        KVCache.bytes(positions: positions, blockCount: blocks.count, width: model.config.kvWidth)
    }

    // MARK: Running steps

    /// Runs one step.
    public func run(_ step: Step, logits: LogitRows = .lastToken) throws -> StepOutput {
        try run(batch: [step], logits: logits)[0]
    }

    /// Runs steps of different requests as one computation (weights read once for the batch).
    /// Validates every step before changing any cache: on error nothing has run.
    public func run(batch steps: [Step], logits: LogitRows = .lastToken) throws -> [StepOutput] {
        let config = model.config
        let d = config.hiddenSize
        guard !steps.isEmpty else { return [] }

        // Validate.
        var seen = Set<KVCacheID>()
        var growthBytes = 0
        var tokenCounts: [Int] = []
        for step in steps {
            guard seen.insert(step.cache).inserted else {
                throw InferenceError.badInput("batch holds two steps of \(step.cache)")
            }
            let count: Int
            switch step.input {
            case .tokens(let tokens):
                guard takesTokens else {
                    throw InferenceError.badInput(
                        "step for \(step.cache) carries token ids, but blocks \(blocks.lowerBound)..<\(blocks.upperBound) take activations")
                }
                if let bad = tokens.first(where: { $0 < 0 || Int($0) >= config.vocabularySize }) {
                    throw InferenceError.badInput("token id \(bad) outside the vocabulary 0..<\(config.vocabularySize)")
                }
                count = tokens.count
            case .activations(let values):
                guard !takesTokens else {
                    throw InferenceError.badInput("step for \(step.cache) carries activations, but block 0 takes token ids")
                }
                guard values.count % d == 0 else {
                    throw InferenceError.badInput("\(values.count) activation values are not a whole number of rows of \(d)")
                }
                count = values.count / d
            }
            guard count > 0 else { throw InferenceError.badInput("step for \(step.cache) has no tokens") }
            let held = heldPositions(step.cache)
            guard step.startPosition >= 0, step.startPosition <= held else {
                throw InferenceError.missingCache(
                    "step for \(step.cache) starts at position \(step.startPosition) but only positions 0..<\(held) are held")
            }
            let end = step.startPosition + count
            guard end <= config.contextLength else {
                throw InferenceError.badInput("step for \(step.cache) ends at position \(end), beyond the context of \(config.contextLength)")
            }
            let current = caches[step.cache]?.bytes ?? 0
            growthBytes += max(0, kvBytes(positions: end) - current)
            tokenCounts.append(count)
        }
        if let budget = options.kvBudgetBytes, growthBytes > 0, kvBytesUsed + growthBytes > budget {
            throw InferenceError.kvFull(
                "batch needs \(growthBytes) more KV bytes; \(kvBytesUsed) of \(budget) are in use")
        }

        // Rows: every token of every step, in order.
        let rowCount = tokenCounts.reduce(0, +)
        var rowCaches: [KVCache] = []
        var rowPositions: [Int] = []
        rowCaches.reserveCapacity(rowCount)
        rowPositions.reserveCapacity(rowCount)
        for (step, count) in zip(steps, tokenCounts) {
            let cache =
                caches[step.cache] ?? {
                    let fresh = KVCache(blockCount: blocks.count, width: config.kvWidth)
                    caches[step.cache] = fresh
                    return fresh
                }()
            cache.reserve(positions: step.startPosition + count)
            for i in 0..<count {
                rowCaches.append(cache)
                rowPositions.append(step.startPosition + i)
            }
        }

        let ws = workspace
        let x = ws.residual.reserve(rowCount * d)
        var row = 0
        for step in steps {
            switch step.input {
            case .tokens(let tokens):
                for token in tokens {
                    model.embedding.dequantizeRow(Int(token), into: x + row * d)
                    row += 1
                }
            case .activations(let values):
                values.withUnsafeBufferPointer { src in
                    if let base = src.baseAddress { (x + row * d).update(from: base, count: values.count) }
                }
                row += values.count / d
            }
        }

        let forward = Forward(
            model: model, options: options, pool: pool, ws: ws, rows: rowCount, caches: rowCaches,
            positions: rowPositions)
        for (index, block) in blocks.enumerated() {
            forward.block(model.blocks[block], cacheBlock: index, x: x)
        }
        for (step, count) in zip(steps, tokenCounts) {
            caches[step.cache]?.length = step.startPosition + count
        }

        guard producesLogits else {
            var outputs: [StepOutput] = []
            var first = 0
            for count in tokenCounts {
                let values = Array(UnsafeBufferPointer(start: x + first * d, count: count * d))
                outputs.append(StepOutput(kind: .activations, rows: count, width: d, values: values))
                first += count
            }
            return outputs
        }

        // Head: final norm and LM head on the rows that need logits.
        var selected: [Int] = []
        var first = 0
        for count in tokenCounts {
            switch logits {
            case .lastToken: selected.append(first + count - 1)
            case .everyToken: selected.append(contentsOf: first..<(first + count))
            }
            first += count
        }
        let vocabulary = config.vocabularySize
        let logitValues = forward.head(x: x, rows: selected)
        var outputs: [StepOutput] = []
        var start = 0
        for count in tokenCounts {
            let n = logits == .lastToken ? 1 : count
            let values = Array(logitValues[(start * vocabulary)..<((start + n) * vocabulary)])
            outputs.append(StepOutput(kind: .logits, rows: n, width: vocabulary, values: values))
            start += n
        }
        return outputs
    }
}

/// Buffers reused across calls of one executor.
final class Workspace {
    let residual = Scratch<Float>()
    let normed = Scratch<Float>()
    let qkv = Scratch<Float>()
    let attention = Scratch<Float>()
    let projected = Scratch<Float>()
    let gateUp = Scratch<Float>()
    let activated = Scratch<Float>()
    let ropeCos = Scratch<Float>()
    let ropeSin = Scratch<Float>()
    let threadScratch = Scratch<Float>()
    let input = PreparedInput()
}

/// One forward computation over a set of rows (tokens of one or more requests).
///
/// Each method is a plain sequence of the transformer's operations; parallel sections split only
/// the output rows of products and the (row, head) pairs of attention.
struct Forward {
    let model: TransformerModel
    let options: ExecutionOptions
    let pool: ComputePool
    let ws: Workspace
    let rows: Int
    let caches: [KVCache]
    let positions: [Int]
    let ropeCos: UnsafeMutablePointer<Float>
    let ropeSin: UnsafeMutablePointer<Float>

    init(
        model: TransformerModel, options: ExecutionOptions, pool: ComputePool, ws: Workspace, rows: Int,
        caches: [KVCache], positions: [Int]
    ) {
        self.model = model
        self.options = options
        self.pool = pool
        self.ws = ws
        self.rows = rows
        self.caches = caches
        self.positions = positions
        // RoPE angles per row: position · base^(−2i/ropeDimensions), computed in double precision.
        let config = model.config
        let pairs = config.ropeDimensions / 2
        ropeCos = ws.ropeCos.reserve(rows * pairs)
        ropeSin = ws.ropeSin.reserve(rows * pairs)
        for r in 0..<rows {
            for i in 0..<pairs {
                let frequency = pow(config.ropeFrequencyBase, -2 * Double(i) / Double(config.ropeDimensions))
                let angle = Double(positions[r]) * frequency
                ropeCos[r * pairs + i] = Float(cos(angle))
                ropeSin[r * pairs + i] = Float(sin(angle))
            }
        }
    }

    /// One decoder block, updating the residual stream `x` in place.
    func block(_ weights: TransformerModel.DecoderBlock, cacheBlock: Int, x: UnsafeMutablePointer<Float>) {
        let config = model.config
        let d = config.hiddenSize
        let qkvWidth = config.queryWidth + 2 * config.kvWidth

        // Attention.
        let h = ws.normed.reserve(rows * d)
        rmsNorm(x, weights.attentionNorm, into: h)
        let qkv = ws.qkv.reserve(rows * qkvWidth)
        project(weights.qkv, input: h, columns: d, into: qkv, width: qkvWidth)
        applyRope(qkv, width: qkvWidth)
        storeKeysValues(qkv, width: qkvWidth, cacheBlock: cacheBlock)
        let attention = ws.attention.reserve(rows * config.queryWidth)
        attend(qkv, width: qkvWidth, cacheBlock: cacheBlock, into: attention)
        let projected = ws.projected.reserve(rows * d)
        project([weights.attentionOutput], input: attention, columns: config.queryWidth, into: projected, width: d)
        for i in 0..<(rows * d) { x[i] += projected[i] }

        // Feed-forward (SwiGLU).
        rmsNorm(x, weights.feedForwardNorm, into: h)
        let f = config.feedForwardSize
        let gateUp = ws.gateUp.reserve(rows * 2 * f)
        project(weights.gateUp, input: h, columns: d, into: gateUp, width: 2 * f)
        let activated = ws.activated.reserve(rows * f)
        // Rows in parallel (each row's values are computed the same way on any thread).
        let gates = SharedPointer(gateUp)
        let outputs = SharedPointer(activated)
        pool.forRanges(rows) { range in
            for r in range {
                let gate = gates.base + r * 2 * f
                let up = gate + f
                let out = outputs.base + r * f
                for i in 0..<f {
                    let g = gate[i]
                    out[i] = g / (1 + exp(-g)) * up[i]
                }
            }
        }
        project([weights.down], input: activated, columns: f, into: projected, width: d)
        for i in 0..<(rows * d) { x[i] += projected[i] }
    }

    /// Final norm and LM head for the selected rows; returns `selected.count × vocabulary` logits.
    func head(x: UnsafeMutablePointer<Float>, rows selected: [Int]) -> [Float] {
        let config = model.config
        let d = config.hiddenSize
        let h = ws.normed.reserve(selected.count * d)
        for (k, r) in selected.enumerated() {
            rmsNormRow(x + r * d, model.outputNorm, into: h + k * d)
        }
        let vocabulary = config.vocabularySize
        return [Float](unsafeUninitializedCapacity: selected.count * vocabulary) { buffer, initialized in
            if let base = buffer.baseAddress {
                ws.input.prepare(h, rows: selected.count, columns: d, precision: options.precision, kernels: options.kernels, pool: pool)
                multiply([model.output], into: base, width: vocabulary)
            }
            initialized = selected.count * vocabulary
        }
    }

    // MARK: Operations

    func rmsNorm(_ x: UnsafeMutablePointer<Float>, _ weight: [Float], into out: UnsafeMutablePointer<Float>) {
        let d = model.config.hiddenSize
        for r in 0..<rows { rmsNormRow(x + r * d, weight, into: out + r * d) }
    }

    func rmsNormRow(_ x: UnsafePointer<Float>, _ weight: [Float], into out: UnsafeMutablePointer<Float>) {
        let d = model.config.hiddenSize
        let meanSquare = MatMul.dot(x, x, d) / Float(d)
        let scale = 1 / (meanSquare + model.config.rmsNormEpsilon).squareRoot()
        weight.withUnsafeBufferPointer { w in
            for i in 0..<d { out[i] = x[i] * scale * w[i] }
        }
    }

    /// `out[r][0..<width] = [M₀ | M₁ | …] · input[r]` for every row.
    func project(
        _ matrices: [WeightMatrix], input: UnsafePointer<Float>, columns: Int, into out: UnsafeMutablePointer<Float>,
        width: Int
    ) {
        ws.input.prepare(input, rows: rows, columns: columns, precision: options.precision, kernels: options.kernels, pool: pool)
        multiply(matrices, into: out, width: width)
    }

    /// Products of the prepared input with the concatenated matrices, output rows split over threads.
    func multiply(_ matrices: [WeightMatrix], into out: UnsafeMutablePointer<Float>, width: Int) {
        let input = ws.input
        let scratchPerThread = matrices.map(MatMul.scratchCount).max() ?? 0
        let scratch = SharedPointer(ws.threadScratch.reserve(scratchPerThread * pool.threads))
        let output = SharedPointer(out)
        let inputBox = UncheckedBox(input)
        var starts: [Int] = []
        var rowTotal = 0
        for m in matrices {
            starts.append(rowTotal)
            rowTotal += m.rows
        }
        let offsets = starts
        let total = rowTotal
        let pieces = min(pool.threads, max(1, total / 16))
        pool.forEach(pieces) { piece in
            let lower = total * piece / pieces
            let upper = total * (piece + 1) / pieces
            let threadScratch = scratch.base + piece * scratchPerThread
            for (m, offset) in zip(matrices, offsets) {
                let from = max(lower, offset) - offset
                let to = min(upper, offset + m.rows) - offset
                guard from < to else { continue }
                MatMul.multiply(
                    m, inputBox.value, rowRange: from..<to, out: output.base + offset, outStride: width,
                    scratch: threadScratch)
            }
        }
    }

    func applyRope(_ qkv: UnsafeMutablePointer<Float>, width: Int) {
        let config = model.config
        let pairs = config.ropeDimensions / 2
        let hs = config.headSize
        let heads = config.headCount + config.kvHeadCount
        for r in 0..<rows {
            let c = ropeCos + r * pairs
            let s = ropeSin + r * pairs
            for head in 0..<heads {
                let v = qkv + r * width + head * hs
                for i in 0..<pairs {
                    let (a, b) = config.ropeStyle == .adjacentPairs ? (2 * i, 2 * i + 1) : (i, i + pairs)
                    let x0 = v[a]
                    let x1 = v[b]
                    v[a] = x0 * c[i] - x1 * s[i]
                    v[b] = x0 * s[i] + x1 * c[i]
                }
            }
        }
    }

    func storeKeysValues(_ qkv: UnsafeMutablePointer<Float>, width: Int, cacheBlock: Int) {
        let config = model.config
        let kvWidth = config.kvWidth
        for r in 0..<rows {
            let cache = caches[r]
            let position = positions[r]
            (cache.keys[cacheBlock] + position * kvWidth).update(from: qkv + r * width + config.queryWidth, count: kvWidth)
            (cache.values[cacheBlock] + position * kvWidth).update(
                from: qkv + r * width + config.queryWidth + kvWidth, count: kvWidth)
        }
    }

    /// Causal attention of each row's query heads over its cache positions 0...position.
    func attend(_ qkv: UnsafeMutablePointer<Float>, width: Int, cacheBlock: Int, into out: UnsafeMutablePointer<Float>) {
        let config = model.config
        let hs = config.headSize
        let group = config.headCount / config.kvHeadCount
        let kvWidth = config.kvWidth
        let scale = 1 / Float(hs).squareRoot()
        let keys = caches.map { SharedPointer($0.keys[cacheBlock]) }
        let values = caches.map { SharedPointer($0.values[cacheBlock]) }
        let positions = self.positions
        let query = SharedPointer(qkv)
        let output = SharedPointer(out)
        let queryWidth = config.queryWidth
        // One item per (row, KV head): the query heads sharing a KV head read each cached key
        // and value once between them. Each head still runs its own fixed sequence (scores in
        // position order, max, exp, sum, value accumulation in position order), so results do
        // not depend on this grouping, the split into ranges or the thread count.
        let kvHeads = config.kvHeadCount
        pool.forRanges(rows * kvHeads) { range in
            let longest = range.map { positions[$0 / kvHeads] }.max() ?? 0
            withUnsafeTemporaryAllocation(of: Float.self, capacity: group * (longest + 2)) { scoresBuffer in
                guard let scores = scoresBuffer.baseAddress else { return }
                let totals = scores + group * (longest + 1)
                for item in range {
                    let r = item / kvHeads
                    let kvHead = item % kvHeads
                    let firstHead = kvHead * group
                    let k = keys[r].base + kvHead * hs
                    let v = values[r].base + kvHead * hs
                    let last = positions[r]
                    let count = last + 1
                    let q = query.base + r * width + firstHead * hs
                    for p in 0...last {
                        let kp = k + p * kvWidth
                        for g in 0..<group {
                            scores[g * count + p] = MatMul.dot(q + g * hs, kp, hs) * scale
                        }
                    }
                    for g in 0..<group {
                        let headScores = scores + g * count
                        var maximum = -Float.infinity
                        for p in 0...last { maximum = max(maximum, headScores[p]) }
                        var total: Float = 0
                        for p in 0...last {
                            let e = exp(headScores[p] - maximum)
                            headScores[p] = e
                            total += e
                        }
                        totals[g] = total
                    }
                    let o = output.base + r * queryWidth + firstHead * hs
                    for g in 0..<group {
                        Self.accumulateValues(
                            scores + g * count, count: count, values: v, stride: kvWidth, width: hs,
                            scale: 1 / totals[g], into: o + g * hs)
                    }
                }
            }
        }
    }
}

extension Forward {
    /// `out[i] = (Σ_p weights[p]·values[p][i]) · scale`, the sum taken in position order from
    /// zero, for one head. Sixteen outputs at a time stay in registers across every position (a
    /// loop that added into memory per position was load- and store-bound); each output sees the
    /// same operations in the same order either way.
    @inline(__always)
    static func accumulateValues(
        _ weights: UnsafePointer<Float>, count: Int, values: UnsafePointer<Float>, stride: Int, width: Int,
        scale: Float, into out: UnsafeMutablePointer<Float>
    ) {
        let raw = UnsafeRawPointer(values)
        let target = UnsafeMutableRawPointer(out)
        var i = 0
        while i + 16 <= width {
            var acc = SIMD16<Float>()
            for p in 0..<count {
                acc += weights[p] * raw.loadUnaligned(fromByteOffset: (p * stride + i) * 4, as: SIMD16<Float>.self)
            }
            target.storeBytes(of: acc * scale, toByteOffset: i * 4, as: SIMD16<Float>.self)
            i += 16
        }
        while i < width {
            var acc: Float = 0
            for p in 0..<count { acc += weights[p] * values[p * stride + i] }
            out[i] = acc * scale
            i += 1
        }
    }
}

/// Carries a non-Sendable reference into one parallel section that only reads it.
struct UncheckedBox<Value>: @unchecked Sendable {
    // Sendable: the section reads `value` and the caller waits for the section to end.
    let value: Value
    init(_ value: Value) { self.value = value }
}
