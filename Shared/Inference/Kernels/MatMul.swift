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

    /// Points at `rows × columns` floats (which must stay valid until the products are done) and,
    /// for `int8`, quantizes them.
    func prepare(_ x: UnsafePointer<Float>, rows: Int, columns: Int, precision: ActivationPrecision) {
        self.rows = rows
        self.columns = columns
        values = x
        quantized = precision == .int8 && columns % 32 == 0
        guard quantized else { return }
        let blocks = columns / 32
        let q = codes.reserve(rows * columns)
        let d = scales.reserve(rows * blocks)
        let s = sums.reserve(rows * blocks)
        for r in 0..<rows {
            for b in 0..<blocks {
                let offset = r * columns + b * 32
                let (scale, sum) = ActivationQuantizer.quantizeBlock(x + offset, into: q + offset)
                d[b * rows + r] = scale
                s[b * rows + r] = sum
            }
        }
    }
}

/// Symmetric 8-bit quantization of activation blocks (one float scale per 32 values).
enum ActivationQuantizer {
    /// Quantizes 32 floats to integers in −127...127 and returns (scale, scale·Σq).
    @inline(__always)
    static func quantizeBlock(_ x: UnsafePointer<Float>, into q: UnsafeMutablePointer<Int16>) -> (Float, Float) {
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

    /// Computes rows `rowRange` of the product for every prepared activation row, writing
    /// `out[t * outStride + j]`.
    static func multiply(
        _ w: WeightMatrix, _ x: PreparedInput, rowRange: Range<Int>,
        out: UnsafeMutablePointer<Float>, outStride: Int, scratch: UnsafeMutablePointer<Float>
    ) {
        if x.quantized {
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
        let half = Half.table
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

/// A weight block unpacked for the integer kernel: 32 codes as four 8-lane vectors (block order),
/// the scale `d` (of the second 16 codes too, unless the format has `d2`) and, for formats with an
/// offset, `m` (value = d·code + m).
struct DecodedBlock {
    var w0: SIMD8<Int16>
    var w1: SIMD8<Int16>
    var w2: SIMD8<Int16>
    var w3: SIMD8<Int16>
    var d: Float
    var m: Float
    /// Scale of codes 16–31 when the format scales each 16 values separately (Q6_K).
    var d2: Float = 0
}

/// A quantized format the integer kernel reads as 32-value blocks (K-quant super-blocks of 256
/// are read as eight of them).
protocol Int8BlockFormat {
    static var hasOffset: Bool { get }
    static var hasTwoScales: Bool { get }
    /// The `b`-th 32-value block of the row starting at `row`.
    static func decode(_ row: UnsafeRawPointer, _ b: Int, _ half: UnsafePointer<Float>) -> DecodedBlock
}

extension DecodedBlock {
    /// Codes from two 16-byte vectors holding values 0–15 and 16–31.
    @inline(__always)
    init<Lane: FixedWidthInteger & SIMDScalar>(
        _ first: SIMD16<Lane>, _ second: SIMD16<Lane>, d: Float, m: Float, d2: Float = 0
    ) {
        self.init(
            w0: SIMD8<Int16>(truncatingIfNeeded: first.lowHalf), w1: SIMD8<Int16>(truncatingIfNeeded: first.highHalf),
            w2: SIMD8<Int16>(truncatingIfNeeded: second.lowHalf), w3: SIMD8<Int16>(truncatingIfNeeded: second.highHalf),
            d: d, m: m, d2: d2)
    }
}

/// Q4_1: d, m (f16), 16 bytes of nibbles; low nibbles are values 0–15, high nibbles 16–31.
enum Q4_1Format: Int8BlockFormat {
    static let hasOffset = true
    static let hasTwoScales = false
    @inline(__always)
    static func decode(_ row: UnsafeRawPointer, _ b: Int, _ half: UnsafePointer<Float>) -> DecodedBlock {
        let p = row + b * 20
        let raw = p.loadUnaligned(fromByteOffset: 4, as: SIMD16<UInt8>.self)
        return DecodedBlock(
            raw & 0x0F, raw &>> 4, d: half[Int(p.loadUnaligned(as: UInt16.self))],
            m: half[Int(p.loadUnaligned(fromByteOffset: 2, as: UInt16.self))])
    }
}

/// Q4_0: d (f16), 16 bytes of nibbles holding code + 8.
enum Q4_0Format: Int8BlockFormat {
    static let hasOffset = false
    static let hasTwoScales = false
    @inline(__always)
    static func decode(_ row: UnsafeRawPointer, _ b: Int, _ half: UnsafePointer<Float>) -> DecodedBlock {
        let p = row + b * 18
        let raw = SIMD16<Int8>(truncatingIfNeeded: p.loadUnaligned(fromByteOffset: 2, as: SIMD16<UInt8>.self))
        let eight = SIMD16<Int8>(repeating: 8)
        return DecodedBlock((raw & 0x0F) &- eight, (raw &>> 4) & 0x0F &- eight, d: half[Int(p.loadUnaligned(as: UInt16.self))], m: 0)
    }
}

/// Q8_0: d (f16), 32 signed bytes.
enum Q8_0Format: Int8BlockFormat {
    static let hasOffset = false
    static let hasTwoScales = false
    @inline(__always)
    static func decode(_ row: UnsafeRawPointer, _ b: Int, _ half: UnsafePointer<Float>) -> DecodedBlock {
        let p = row + b * 34
        return DecodedBlock(
            p.loadUnaligned(fromByteOffset: 2, as: SIMD16<Int8>.self),
            p.loadUnaligned(fromByteOffset: 18, as: SIMD16<Int8>.self), d: half[Int(p.loadUnaligned(as: UInt16.self))],
            m: 0)
    }
}

/// Q4_K: a 256-value super-block (144 bytes) is eight 32-value blocks with 6-bit scale and min
/// each: value = (d·scale)·code − dmin·min, i.e. a Q4_1-like block with m = −dmin·min.
enum Q4_KFormat: Int8BlockFormat {
    static let hasOffset = true
    static let hasTwoScales = false
    @inline(__always)
    static func decode(_ row: UnsafeRawPointer, _ b: Int, _ half: UnsafePointer<Float>) -> DecodedBlock {
        let p = row + (b >> 3) * 144
        let j = b & 7
        let (scale, minimum) = Dequantize.q4KScaleMin(p + 4, j)
        let bytes = p + 16 + (j >> 1) * 32
        let shift: UInt8 = j & 1 == 0 ? 0 : 4
        let first = (bytes.loadUnaligned(as: SIMD16<UInt8>.self) &>> shift) & 0x0F
        let second = (bytes.loadUnaligned(fromByteOffset: 16, as: SIMD16<UInt8>.self) &>> shift) & 0x0F
        return DecodedBlock(
            first, second, d: half[Int(p.loadUnaligned(as: UInt16.self))] * Float(scale),
            m: -(half[Int(p.loadUnaligned(fromByteOffset: 2, as: UInt16.self))] * Float(minimum)))
    }
}

/// Q6_K: a 256-value super-block (210 bytes) is eight 32-value blocks whose 16-value halves have
/// their own signed 8-bit scale: value = (d·scale)·(code − 32).
enum Q6_KFormat: Int8BlockFormat {
    static let hasOffset = false
    static let hasTwoScales = true
    @inline(__always)
    static func decode(_ row: UnsafeRawPointer, _ b: Int, _ half: UnsafePointer<Float>) -> DecodedBlock {
        let p = row + (b >> 3) * 210
        let j = b & 7
        let halfIndex = j >> 2
        let quarter = j & 3
        let low = p + halfIndex * 64 + (quarter & 1) * 32
        let high = p + 128 + halfIndex * 32
        let lowShift: UInt8 = quarter < 2 ? 0 : 4
        let highShift = UInt8(2 * quarter)
        func codes(_ offset: Int) -> SIMD16<Int8> {
            let l = (low.loadUnaligned(fromByteOffset: offset, as: SIMD16<UInt8>.self) &>> lowShift) & 0x0F
            let h = (high.loadUnaligned(fromByteOffset: offset, as: SIMD16<UInt8>.self) &>> highShift) & 0x03
            return SIMD16<Int8>(truncatingIfNeeded: l | (h &<< 4)) &- 32
        }
        let d = half[Int(p.loadUnaligned(fromByteOffset: 208, as: UInt16.self))]
        let scales = p + 192 + halfIndex * 8 + 2 * quarter
        return DecodedBlock(
            codes(0), codes(16), d: d * Float(scales.load(as: Int8.self)), m: 0,
            d2: d * Float(scales.load(fromByteOffset: 1, as: Int8.self)))
    }
}
