import GGUF
import QuantFormats
import WideKernels
import WideKernelsAVX2

/// How activations enter products with quantized weights.
///
/// `float32` multiplies dequantised weights by the float activations (closest to a float reference:
/// logits within ~0.05). `int8` first quantizes each 32-value block of an activation row to 8 bits
/// with one scale, as llama.cpp does, so Q4_0/Q4_1/Q8_0/Q4_K/Q6_K products run on integers (faster; logits
/// move by up to ~2.5 on SmolLM2, whose activations reach ~23,000). Both are deterministic; every
/// stage of one pipeline must use the same precision.
public enum ActivationPrecision: String, Sendable, CaseIterable {
    case float32
    case int8
}

/// A batch of activation rows prepared once for every product that consumes them.
///
/// For the `int8` path each row is cut into 32-value blocks, each stored as 32 integers in
/// −127...127 (widened to 16 bits so products map onto 16-bit multiply-add instructions), its
/// scale `d`, and `d·Σq` (needed by the offset term of Q4_1 and Q4_K). Scales and sums are stored
/// block-major (`[block][row]`) so a tile of rows reads them as one vector.
final class PreparedInput {
    private(set) var rows = 0
    private(set) var columns = 0
    private(set) var values = UnsafePointer<Float>(bitPattern: 16).unsafelyUnwrapped
    private(set) var quantized = false
    let codes = Scratch<Int16>()
    let scales = Scratch<Float>()
    let sums = Scratch<Float>()

    /// The kernels the products run on (a set this CPU runs).
    private(set) var kernels = KernelSet.portable
    /// Whether the wide kernels' layout below was prepared (a quantized batch of at least
    /// `MatMul.wideMinimumTokens(kernels)` rows with a wide kernel set).
    private(set) var wide = false
    /// Whether the few-token layout below was prepared (a wide set, up to
    /// `MatMul.fewTokenMaximum(kernels)` rows).
    private(set) var fewTokens = false
    /// Tokens rounded up to whole 16-token tiles.
    private(set) var paddedRows = 0
    /// Per tile, per column pair, 16 lanes (one per token) of the pair's two 16-bit codes.
    let pairs = Scratch<Int32>()
    /// Scales and `d·Σq` as `[block][paddedRows]`, zero for the padding tokens.
    let paddedScales = Scratch<Float>()
    let paddedSums = Scratch<Float>()
    /// Each token's codes on a wide set below its batch minimum: per block its even-numbered
    /// codes, then its odd ones; and its scales and `d·Σq` per block, token-major.
    let splitCodes = Scratch<Int16>()
    let splitScales = Scratch<Float>()
    let splitSums = Scratch<Float>()

    /// Points at `rows × columns` floats (which must stay valid until the products are done) and,
    /// for `int8`, quantizes them.
    /// With a `pool`, rows are quantized in parallel (each row's result is the same either way).
    func prepare(
        _ x: UnsafePointer<Float>, rows: Int, columns: Int, precision: ActivationPrecision,
        kernels: KernelSet = .best, pool: ComputePool? = nil
    ) {
        self.rows = rows
        self.columns = columns
        values = x
        quantized = precision == .int8 && columns % 32 == 0
        self.kernels = kernels.runnable
        wide = false
        fewTokens = false
        guard quantized else { return }
        let blocks = columns / 32
        let q = SharedPointer(codes.reserve(rows * columns))
        let d = SharedPointer(scales.reserve(rows * blocks))
        let s = SharedPointer(sums.reserve(rows * blocks))
        let source = SharedPointer(UnsafeMutablePointer(mutating: x))
        let quantizeRows: @Sendable (Range<Int>) -> Void = { range in
            for r in range {
                for b in 0..<blocks {
                    let offset = r * columns + b * 32
                    let (scale, sum) = ActivationQuantizer.quantizeBlock(source.base + offset, into: q.base + offset)
                    d.base[b * rows + r] = scale
                    s.base[b * rows + r] = sum
                }
            }
        }
        if let pool, rows > 1 { pool.forRanges(rows, quantizeRows) } else { quantizeRows(0..<rows) }
        if self.kernels != .portable && rows >= MatMul.wideMinimumTokens(self.kernels) {
            prepareWide(blocks: blocks)
        } else if self.kernels != .portable && rows <= MatMul.fewTokenMaximum(self.kernels) {
            fewTokens = true
            let split = splitCodes.reserve(rows * columns)
            for i in 0..<(rows * columns) {
                split[i & ~31 | (i & 1) << 4 | (i & 31) >> 1] = q.base[i]
            }
            let tokenScales = splitScales.reserve(rows * blocks)
            let tokenSums = splitSums.reserve(rows * blocks)
            for t in 0..<rows {
                for b in 0..<blocks {
                    tokenScales[t * blocks + b] = d.base[b * rows + t]
                    tokenSums[t * blocks + b] = s.base[b * rows + t]
                }
            }
        }
    }

    /// Rearranges the quantized rows into the wide kernels' token-per-lane layout.
    private func prepareWide(blocks: Int) {
        let tile = MatMul.wideTileTokens
        wide = true
        paddedRows = (rows + tile - 1) / tile * tile
        let pairCount = columns / 2
        let p = pairs.reserve(paddedRows * pairCount)
        p.update(repeating: 0, count: paddedRows * pairCount)
        let source = UnsafeRawPointer(codes.pointer)
        for t in 0..<rows {
            let base = (t / tile) * pairCount * tile + t % tile
            let row = source + t * columns * 2
            for i in 0..<pairCount {
                p[base + i * tile] = row.loadUnaligned(fromByteOffset: i * 4, as: Int32.self)
            }
        }
        let d = paddedScales.reserve(blocks * paddedRows)
        let s = paddedSums.reserve(blocks * paddedRows)
        d.update(repeating: 0, count: blocks * paddedRows)
        s.update(repeating: 0, count: blocks * paddedRows)
        for b in 0..<blocks {
            for t in 0..<rows {
                d[b * paddedRows + t] = scales.pointer[b * rows + t]
                s[b * paddedRows + t] = sums.pointer[b * rows + t]
            }
        }
    }
}

/// Symmetric 8-bit quantization of activation blocks (one float scale per 32 values).
enum ActivationQuantizer {
    /// Quantizes 32 floats to integers in −127...127 and returns (scale, scale·Σq).
    ///
    /// `q = (x/d).rounded(.toNearestOrAwayFromZero)` with `d = max|x|/127`, computed four lanes at
    /// a time without library calls or branches (the portable target has no rounding
    /// instruction): `trunc(|v|)` by the 2²³ trick, the exact fraction `|v| − trunc(|v|)` compared
    /// with 0.5, the sign put back, and the integer read from the bits of `r + 1.5·2²³`. Exact for
    /// |v| < 2²², and |v| ≤ 127 here; `referenceQuantizeBlock` is the scalar statement.
    @inline(__always)
    static func quantizeBlock(_ x: UnsafePointer<Float>, into q: UnsafeMutablePointer<Int16>) -> (Float, Float) {
        let raw = UnsafeRawPointer(x)
        var m = SIMD4<Float>()
        for i in 0..<8 {
            let a = magnitude(raw.loadUnaligned(fromByteOffset: i &* 16, as: SIMD4<Float>.self))
            m.replace(with: a, where: a .> m)
        }
        let amax = max(max(m[0], m[1]), max(m[2], m[3]))
        let d = amax / 127
        let inverse: Float = d == 0 ? 0 : 1 / d
        let twoTo23 = SIMD4<Float>(repeating: 8_388_608)
        let integerShift = SIMD4<Float>(repeating: 12_582_912)
        var total = SIMD4<Int32>()
        let out = UnsafeMutableRawPointer(q)
        for i in 0..<8 {
            let v = raw.loadUnaligned(fromByteOffset: i &* 16, as: SIMD4<Float>.self) * inverse
            let a = magnitude(v)
            var whole = (a + twoTo23) - twoTo23
            whole.replace(with: whole - 1, where: whole .> a)
            whole.replace(with: whole + 1, where: a - whole .>= 0.5)
            let sign = unsafeBitCast(v, to: SIMD4<UInt32>.self) & 0x8000_0000
            let signed = unsafeBitCast(unsafeBitCast(whole, to: SIMD4<UInt32>.self) | sign, to: SIMD4<Float>.self)
            let n = unsafeBitCast(signed + integerShift, to: SIMD4<Int32>.self) &- 0x4B40_0000
            total &+= n
            out.storeBytes(of: SIMD4<Int16>(truncatingIfNeeded: n), toByteOffset: i &* 8, as: SIMD4<Int16>.self)
        }
        return (d, d * Float(total.wrappedSum()))
    }

    @inline(__always)
    static func magnitude(_ v: SIMD4<Float>) -> SIMD4<Float> {
        unsafeBitCast(unsafeBitCast(v, to: SIMD4<UInt32>.self) & 0x7FFF_FFFF, to: SIMD4<Float>.self)
    }

    /// The scalar statement of `quantizeBlock` (tests compare the two bit for bit).
    static func referenceQuantizeBlock(_ x: UnsafePointer<Float>, into q: UnsafeMutablePointer<Int16>) -> (Float, Float) {
        var amax: Float = 0
        for i in 0..<32 { amax = max(amax, abs(x[i])) }
        let d = amax / 127
        let inverse: Float = d == 0 ? 0 : 1 / d
        var total: Int32 = 0
        for i in 0..<32 {
            let v = Int16((x[i] * inverse).rounded(.toNearestOrAwayFromZero))
            q[i] = v
            total &+= Int32(v)
        }
        return (d, d * Float(total))
    }
}

/// Matrix products `out[t][j] = W[j] · x[t]` on quantized weights.
///
/// Determinism: every output element is produced by one fixed sequence of operations that depends
/// only on its weight row and its activation row (float path: 8 lane accumulators over the columns
/// and a fixed lane reduction; integer path: per block, the exact integer sum, then scalar float
/// steps). Token tiling, row ranges and threads only decide *when* an element is computed, never
/// *how*; so results are bit-identical across batch composition, thread count and chunking — and,
/// for the integer path, across builds with wider SIMD (`-target-cpu`), since integer sums are exact.
enum MatMul {
    /// Tokens that share one pass over a weight row.
    static let tokenTile = 4

    /// Batches from this many tokens on run with tokens in the wide kernels' vector lanes.
    /// AVX-512: two tokens already gain on a 4-lane tile (1.3× the tokens/s of one at one thread,
    /// three 1.8×). AVX2 (`hyperion bench inference --products`, the model's matrices, one
    /// thread): at 4 tokens lanes ran at 1.2× the portable 4-token tiles and level with the
    /// few-token kernel, at 5–7 tokens 2.0–3.8× the portable tiles (which then leave a ragged
    /// tile), at 8–16 tokens 1.5–2.1×; at 1–3 tokens the few-token kernel is ahead.
    static func wideMinimumTokens(_ kernels: KernelSet) -> Int { kernels == .avx2 ? 4 : 2 }

    /// Batches up to this many tokens run on a wide set's single-token kernel, three tokens per
    /// pass over each row (AVX2: 2.3–2.8× the portable kernel on the model's 576- and 1536-wide
    /// matrices, 1.0–1.5× on its 49152-row output matrix, which memory bounds).
    static func fewTokenMaximum(_ kernels: KernelSet) -> Int { kernels == .avx2 ? 3 : 1 }
    /// Tokens per tile of the wide kernels (`WideInt8Product.tileTokens`, not read from that
    /// module so nothing of it runs before the CPU check).
    static let wideTileTokens = 16

    /// Computes rows `rowRange` of the product for every prepared activation row, writing
    /// `out[t * outStride + j]`.
    static func multiply(
        _ w: WeightMatrix, _ x: PreparedInput, rowRange: Range<Int>,
        out: UnsafeMutablePointer<Float>, outStride: Int, scratch: UnsafeMutablePointer<Float>
    ) {
        if x.quantized {
            if x.wide && wideProduct(w, x, rowRange, out, outStride, scratch) { return }
            if x.fewTokens && fewTokenProduct(w, x, rowRange, out, outStride) { return }
            switch w.type {
            case .q4_1: return q4_1Int8(w, x, rowRange, out, outStride, scratch)
            case .q4_0: return q4_0Int8(w, x, rowRange, out, outStride, scratch)
            case .q8_0: return q8_0Int8(w, x, rowRange, out, outStride, scratch)
            case .q4_K: return q4_KInt8(w, x, rowRange, out, outStride, scratch)
            case .q6_K: return q6_KInt8(w, x, rowRange, out, outStride, scratch)
            default: break
            }
        }
        floatPath(w, x, rowRange, out, outStride, scratch)
    }

    /// Scratch floats `multiply` needs per calling thread: a dequantised row for the float path,
    /// or a chunk of decoded blocks (64-byte aligned) for batches on the integer path.
    static func scratchCount(_ w: WeightMatrix) -> Int {
        let decodedBytes = predecodeRows * (w.columns / 32) * MemoryLayout<DecodedBlock>.stride + 64
        return max(w.columns + 8, (decodedBytes + 3) / 4)
    }

    // MARK: float32 activations

    /// Dequantises one weight row (reference dequantisation), then dots it with each activation
    /// row: 8 lane accumulators over the columns, a fixed lane reduction, a scalar tail.
    ///
    /// Kernels are never inlined: each is compiled once, so every caller runs the same code.
    @inline(never)
    static func floatPath(
        _ w: WeightMatrix, _ x: PreparedInput, _ rowRange: Range<Int>,
        _ out: UnsafeMutablePointer<Float>, _ outStride: Int, _ scratch: UnsafeMutablePointer<Float>
    ) {
        let n = w.columns
        for j in rowRange {
            w.dequantizeRow(j, into: scratch)
            for t in 0..<x.rows {
                out[t * outStride + j] = dot(scratch, x.values + t * n, n)
            }
        }
    }

    /// The float dot product every float path uses (fixed order).
    @inline(__always)
    static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = SIMD8<Float>()
        let a8 = UnsafeRawPointer(a)
        let b8 = UnsafeRawPointer(b)
        var i = 0
        while i + 8 <= n {
            acc += a8.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
                * b8.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            i += 8
        }
        var total = reduce(acc)
        while i < n {
            total += a[i] * b[i]
            i += 1
        }
        return total
    }

    /// The fixed lane reduction of an 8-lane float accumulator.
    @inline(__always)
    static func reduce(_ v: SIMD8<Float>) -> Float {
        let h = v.lowHalf + v.highHalf
        return (h[0] + h[2]) + (h[1] + h[3])
    }

    @inline(__always)
    static func reduce(_ v: SIMD4<Float>) -> Float {
        (v[0] + v[2]) + (v[1] + v[3])
    }

    // MARK: int8 activations

    /// Pairwise multiply-add of 16-bit lanes into 32-bit lanes: exactly one SSE2 `pmaddwd` when
    /// written at this 128-bit width (a wider vector is split before the pattern is recognised).
    @inline(__always)
    static func multiplyAddPairs(_ a: SIMD8<Int16>, _ b: SIMD8<Int16>) -> SIMD4<Int32> {
        let p = SIMD8<Int32>(truncatingIfNeeded: a) &* SIMD8<Int32>(truncatingIfNeeded: b)
        return p.evenHalf &+ p.oddHalf
    }

    /// Σ w·x over one 32-value block as four 32-bit lane sums (fixed pairing and order).
    @inline(__always)
    static func blockDot(_ w: DecodedBlock, _ x: UnsafeRawPointer) -> SIMD4<Int32> {
        let x0 = x.loadUnaligned(as: SIMD8<Int16>.self)
        let x1 = x.loadUnaligned(fromByteOffset: 16, as: SIMD8<Int16>.self)
        let x2 = x.loadUnaligned(fromByteOffset: 32, as: SIMD8<Int16>.self)
        let x3 = x.loadUnaligned(fromByteOffset: 48, as: SIMD8<Int16>.self)
        return (multiplyAddPairs(w.w0, x0) &+ multiplyAddPairs(w.w1, x1))
            &+ (multiplyAddPairs(w.w2, x2) &+ multiplyAddPairs(w.w3, x3))
    }

    /// Σ w·x over each 16-value half of a block (for formats with a scale per 16 values).
    @inline(__always)
    static func halfBlockDots(_ w: DecodedBlock, _ x: UnsafeRawPointer) -> (SIMD4<Int32>, SIMD4<Int32>) {
        let x0 = x.loadUnaligned(as: SIMD8<Int16>.self)
        let x1 = x.loadUnaligned(fromByteOffset: 16, as: SIMD8<Int16>.self)
        let x2 = x.loadUnaligned(fromByteOffset: 32, as: SIMD8<Int16>.self)
        let x3 = x.loadUnaligned(fromByteOffset: 48, as: SIMD8<Int16>.self)
        return (
            multiplyAddPairs(w.w0, x0) &+ multiplyAddPairs(w.w1, x1), multiplyAddPairs(w.w2, x2) &+ multiplyAddPairs(w.w3, x3)
        )
    }

    /// Rows processed together so their weights stay in L1 while a tile of tokens passes over them.
    static let rowChunk = 16

    /// The exact integer total of a block's four lane sums (any order gives the same integer).
    @inline(__always)
    static func total(_ v: SIMD4<Int32>) -> Int32 { (v[0] &+ v[2]) &+ (v[1] &+ v[3]) }

    /// The exact totals of four tokens' lane sums, one token per lane.
    @inline(__always)
    static func totals(_ a: SIMD4<Int32>, _ b: SIMD4<Int32>, _ c: SIMD4<Int32>, _ d: SIMD4<Int32>) -> SIMD4<Int32> {
        let ab = SIMD4(lowHalf: a.lowHalf &+ a.highHalf, highHalf: b.lowHalf &+ b.highHalf)
        let cd = SIMD4(lowHalf: c.lowHalf &+ c.highHalf, highHalf: d.lowHalf &+ d.highHalf)
        return SIMD4(lowHalf: ab.evenHalf, highHalf: cd.evenHalf) &+ SIMD4(lowHalf: ab.oddHalf, highHalf: cd.oddHalf)
    }

    /// Tokens from which each row chunk's weight blocks are decoded once into scratch and read
    /// back by every 4-token tile, instead of being decoded again for each tile.
    static let predecodeTokens = 8

    /// Rows decoded together on that path (their blocks stay in L1/L2 while the tiles pass).
    static let predecodeRows = 8

    /// The integer kernel for one block format.
    ///
    /// Each (row, token) element runs one fixed sequence: for every 32-value block in order, the
    /// exact integer Σ w·x (a 32-bit integer, whatever the vector width that computed it), then
    /// `acc += Float(Σ)·(d_w·d_x)` and, with an offset, `off += m_w·(d_x·Σx)`; the result is
    /// `acc + off`. Four tokens share one decode of each weight block and keep their `acc`/`off`
    /// in the lanes of a vector, where each lane performs exactly the scalar operations of a
    /// token run alone. From `predecodeTokens` tokens on, a chunk of rows is decoded once into
    /// scratch and every tile reads the same decoded values back, so a batch of B tokens decodes
    /// each weight block once instead of B/4 times. Hence results are bit-identical whatever the
    /// batch, tile, thread count or SIMD width of the build.
    @inline(__always)
    static func int8Product<Format: Int8BlockFormat>(
        _: Format.Type, _ w: WeightMatrix, _ x: PreparedInput, _ rowRange: Range<Int>,
        _ out: UnsafeMutablePointer<Float>, _ outStride: Int, _ scratch: UnsafeMutablePointer<Float>
    ) {
        let blocks = w.columns / 32
        let tokens = x.rows
        let half = HalfTable(Half.table)
        let operands = Int8Operands(x: x)
        if tokens >= predecodeTokens {
            let raw = UnsafeMutableRawPointer(scratch).alignedUp(toMultipleOf: 64)
            let decoded = raw.bindMemory(to: DecodedBlock.self, capacity: predecodeRows * blocks)
            defer { UnsafeMutableRawPointer(scratch).bindMemory(to: Float.self, capacity: scratchCount(w)) }
            var chunkStart = rowRange.lowerBound
            while chunkStart < rowRange.upperBound {
                let chunkEnd = min(chunkStart + predecodeRows, rowRange.upperBound)
                for j in chunkStart..<chunkEnd {
                    let row = w.row(j)
                    let target = decoded + (j - chunkStart) * blocks
                    for b in 0..<blocks { target[b] = Format.decode(row, b, half) }
                }
                // Tile-major: a tile's activations stay in L1 while the chunk's rows pass over them.
                var t = 0
                while t + 4 <= tokens {
                    for j in chunkStart..<chunkEnd {
                        let rowBlocks = UnsafePointer(decoded + (j - chunkStart) * blocks)
                        operands.tile(Format.self, blocks: blocks, row: j, token: t, out: out, outStride: outStride) { rowBlocks[$0] }
                    }
                    t += 4
                }
                while t < tokens {
                    for j in chunkStart..<chunkEnd {
                        let rowBlocks = UnsafePointer(decoded + (j - chunkStart) * blocks)
                        operands.single(Format.self, blocks: blocks, row: j, token: t, out: out, outStride: outStride) { rowBlocks[$0] }
                    }
                    t += 1
                }
                chunkStart = chunkEnd
            }
            return
        }
        var chunkStart = rowRange.lowerBound
        while chunkStart < rowRange.upperBound {
            let chunkEnd = min(chunkStart + rowChunk, rowRange.upperBound)
            for j in chunkStart..<chunkEnd {
                let row = w.row(j)
                operands.allTokens(Format.self, blocks: blocks, row: j, out: out, outStride: outStride) {
                    Format.decode(row, $0, half)
                }
            }
            chunkStart = chunkEnd
        }
    }

    /// The wide path, for the formats with one scale per 32 values: the wide module decodes each
    /// chunk of rows once and passes every 16-token tile over it.
    static func wideProduct(
        _ w: WeightMatrix, _ x: PreparedInput, _ rowRange: Range<Int>,
        _ out: UnsafeMutablePointer<Float>, _ outStride: Int, _ scratch: UnsafeMutablePointer<Float>
    ) -> Bool {
        let operands = BatchOperands(
            pairs: UnsafeRawPointer(x.pairs.pointer), scales: UnsafeRawPointer(x.paddedScales.pointer),
            sums: UnsafeRawPointer(x.paddedSums.pointer), tokens: x.rows, paddedTokens: x.paddedRows, out: out,
            outStride: outStride, scratch: UnsafeMutableRawPointer(scratch).alignedUp(toMultipleOf: 64),
            rowChunk: predecodeRows)
        let kernel = x.kernels == .avx512
            ? entry(WideKernels.WideInt8Product.self, w.type) : entry(WideKernelsAVX2.WideInt8Product.self, w.type)
        guard let kernel else { return false }
        kernel(w.base, w.rowBytes, rowRange, w.columns / 32, operands)
        return true
    }

    /// A wide module's entry point for a format (nil for one it does not cover).
    static func entry<K: FormatKernels>(
        _: K.Type, _ type: GGMLType
    ) -> ((UnsafeRawPointer, Int, Range<Int>, Int, K.Operands) -> Void)? {
        switch type {
        case .q4_1: return K.q4_1
        case .q4_0: return K.q4_0
        case .q8_0: return K.q8_0
        case .q4_K: return K.q4_K
        default: return nil
        }
    }

    /// A few tokens on a wide kernel set's single-token kernel (Q4_0, Q4_1, Q8_0, Q4_K): each
    /// block's codes in one 256-bit register, eight blocks' totals from one reduction tree, rows
    /// in memory order, each row read once for up to three tokens. False for a format it does not
    /// cover.
    static func fewTokenProduct(
        _ w: WeightMatrix, _ x: PreparedInput, _ rowRange: Range<Int>, _ out: UnsafeMutablePointer<Float>, _ outStride: Int
    ) -> Bool {
        let kernel = x.kernels == .avx512
            ? entry(WideKernels.SingleTokenProduct.self, w.type) : entry(WideKernelsAVX2.SingleTokenProduct.self, w.type)
        guard let kernel else { return false }
        let operands = SingleTokenOperands(
            split: UnsafeRawPointer(x.splitCodes.pointer), scales: UnsafePointer(x.splitScales.pointer),
            sums: UnsafePointer(x.splitSums.pointer), out: out, tokens: x.rows, outStride: outStride)
        kernel(w.base, w.rowBytes, rowRange, w.columns / 32, operands)
        return true
    }

    @inline(never)
    static func q4_1Int8(
        _ w: WeightMatrix, _ x: PreparedInput, _ rowRange: Range<Int>,
        _ out: UnsafeMutablePointer<Float>, _ outStride: Int, _ scratch: UnsafeMutablePointer<Float>
    ) {
        int8Product(Q4_1Format.self, w, x, rowRange, out, outStride, scratch)
    }

    @inline(never)
    static func q4_0Int8(
        _ w: WeightMatrix, _ x: PreparedInput, _ rowRange: Range<Int>,
        _ out: UnsafeMutablePointer<Float>, _ outStride: Int, _ scratch: UnsafeMutablePointer<Float>
    ) {
        int8Product(Q4_0Format.self, w, x, rowRange, out, outStride, scratch)
    }

    @inline(never)
    static func q8_0Int8(
        _ w: WeightMatrix, _ x: PreparedInput, _ rowRange: Range<Int>,
        _ out: UnsafeMutablePointer<Float>, _ outStride: Int, _ scratch: UnsafeMutablePointer<Float>
    ) {
        int8Product(Q8_0Format.self, w, x, rowRange, out, outStride, scratch)
    }

    @inline(never)
    static func q4_KInt8(
        _ w: WeightMatrix, _ x: PreparedInput, _ rowRange: Range<Int>,
        _ out: UnsafeMutablePointer<Float>, _ outStride: Int, _ scratch: UnsafeMutablePointer<Float>
    ) {
        int8Product(Q4_KFormat.self, w, x, rowRange, out, outStride, scratch)
    }

    @inline(never)
    static func q6_KInt8(
        _ w: WeightMatrix, _ x: PreparedInput, _ rowRange: Range<Int>,
        _ out: UnsafeMutablePointer<Float>, _ outStride: Int, _ scratch: UnsafeMutablePointer<Float>
    ) {
        int8Product(Q6_KFormat.self, w, x, rowRange, out, outStride, scratch)
    }
}

/// The prepared activations as the integer kernel reads them: codes, scales and Σ, per token.
struct Int8Operands {
    let codes: UnsafeRawPointer
    let scales: UnsafeRawPointer
    let sums: UnsafeRawPointer
    let tokens: Int
    let rowBytes: Int

    init(x: PreparedInput) {
        codes = UnsafeRawPointer(x.codes.pointer)
        scales = UnsafeRawPointer(x.scales.pointer)
        sums = UnsafeRawPointer(x.sums.pointer)
        tokens = x.rows
        rowBytes = x.columns &* 2
    }

    /// Output `row` for every token: 4-token tiles, then single tokens, with the weight block
    /// `b` supplied by `block(b)` (decoded on the spot or read back from scratch: the same values).
    @inline(__always)
    func allTokens<Format: Int8BlockFormat>(
        _: Format.Type, blocks: Int, row j: Int, out: UnsafeMutablePointer<Float>, outStride: Int,
        _ block: (Int) -> DecodedBlock
    ) {
        var t = 0
        while t + 4 <= tokens {
            tile(Format.self, blocks: blocks, row: j, token: t, out: out, outStride: outStride, block)
            t += 4
        }
        while t < tokens {
            single(Format.self, blocks: blocks, row: j, token: t, out: out, outStride: outStride, block)
            t += 1
        }
    }

    /// Output `row` for tokens `t..<t+4`, one token per vector lane.
    @inline(__always)
    func tile<Format: Int8BlockFormat>(
        _: Format.Type, blocks: Int, row j: Int, token t: Int, out: UnsafeMutablePointer<Float>, outStride: Int,
        _ block: (Int) -> DecodedBlock
    ) {
        let x0 = codes + t &* rowBytes
        let x1 = x0 + rowBytes
        let x2 = x1 + rowBytes
        let x3 = x2 + rowBytes
        var acc = SIMD4<Float>()
        var off = SIMD4<Float>()
        for b in 0..<blocks {
            let block = block(b)
            let blockOffset = b &* 64
            let dx = scales.loadUnaligned(fromByteOffset: (b &* tokens &+ t) &* 4, as: SIMD4<Float>.self)
            if Format.hasTwoScales {
                let a0 = MatMul.halfBlockDots(block, x0 + blockOffset)
                let a1 = MatMul.halfBlockDots(block, x1 + blockOffset)
                let a2 = MatMul.halfBlockDots(block, x2 + blockOffset)
                let a3 = MatMul.halfBlockDots(block, x3 + blockOffset)
                acc += SIMD4<Float>(MatMul.totals(a0.0, a1.0, a2.0, a3.0)) * (block.d * dx)
                acc += SIMD4<Float>(MatMul.totals(a0.1, a1.1, a2.1, a3.1)) * (block.d2 * dx)
            } else {
                let sums4 = MatMul.totals(
                    MatMul.blockDot(block, x0 + blockOffset), MatMul.blockDot(block, x1 + blockOffset),
                    MatMul.blockDot(block, x2 + blockOffset), MatMul.blockDot(block, x3 + blockOffset))
                acc += SIMD4<Float>(sums4) * (block.d * dx)
            }
            if Format.hasOffset {
                off += block.m * sums.loadUnaligned(fromByteOffset: (b &* tokens &+ t) &* 4, as: SIMD4<Float>.self)
            }
        }
        let result = acc + off
        out[t &* outStride &+ j] = result[0]
        out[(t &+ 1) &* outStride &+ j] = result[1]
        out[(t &+ 2) &* outStride &+ j] = result[2]
        out[(t &+ 3) &* outStride &+ j] = result[3]
    }

    /// Output `row` for token `t` alone: the scalar sequence each lane of `tile` performs.
    @inline(__always)
    func single<Format: Int8BlockFormat>(
        _: Format.Type, blocks: Int, row j: Int, token t: Int, out: UnsafeMutablePointer<Float>, outStride: Int,
        _ block: (Int) -> DecodedBlock
    ) {
        let xt = codes + t &* rowBytes
        var acc: Float = 0
        var off: Float = 0
        for b in 0..<blocks {
            let block = block(b)
            let dx = scales.load(fromByteOffset: (b &* tokens &+ t) &* 4, as: Float.self)
            if Format.hasTwoScales {
                let (first, second) = MatMul.halfBlockDots(block, xt + b &* 64)
                acc += Float(MatMul.total(first)) * (block.d * dx)
                acc += Float(MatMul.total(second)) * (block.d2 * dx)
            } else {
                acc += Float(MatMul.total(MatMul.blockDot(block, xt + b &* 64))) * (block.d * dx)
            }
            if Format.hasOffset {
                off += block.m * sums.load(fromByteOffset: (b &* tokens &+ t) &* 4, as: Float.self)
            }
        }
        out[t &* outStride &+ j] = acc + off
    }
}
