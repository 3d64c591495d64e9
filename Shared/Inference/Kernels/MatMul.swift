/// How activations enter products with quantized weights.
///
/// `float32` multiplies dequantised weights by the float activations (closest to a float reference:
/// logits within ~0.05). `int8` first quantizes each 32-value block of an activation row to 8 bits
/// with one scale, as llama.cpp does, so Q4_0/Q4_1/Q8_0 products run on integers (faster; logits
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
/// scale `d`, and `d·Σq` (needed by Q4_1's offset term).
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
                d[r * blocks + b] = scale
                s[r * blocks + b] = sum
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
/// only on its weight row and its activation row: blocks in ascending order into per-lane
/// accumulators, then a fixed reduction. Token tiling, row ranges and threads only decide *when* an
/// element is computed, never *how*; so results are bit-identical across batch composition, thread
/// count and chunking.
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
            case .q4_1: return q4_1Int8(w, x, rowRange, out, outStride)
            case .q4_0: return q4_0Int8(w, x, rowRange, out, outStride)
            case .q8_0: return q8_0Int8(w, x, rowRange, out, outStride)
            default: break
            }
        }
        floatPath(w, x, rowRange, out, outStride, scratch)
    }

    /// Scratch floats `multiply` needs per calling thread.
    static func scratchCount(_ w: WeightMatrix) -> Int { w.columns + 8 }

    // MARK: float32 activations

    /// Dequantises one weight row (reference dequantisation), then dots it with each activation
    /// row: 8 lane accumulators over the columns, a fixed lane reduction, a scalar tail.
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

    /// Pairwise multiply-add of 16-bit lanes into 32-bit lanes (the shape of x86's `pmaddwd`).
    @inline(__always)
    static func multiplyAddPairs(_ a: SIMD16<Int16>, _ b: SIMD16<Int16>) -> SIMD8<Int32> {
        let p = SIMD16<Int32>(truncatingIfNeeded: a) &* SIMD16<Int32>(truncatingIfNeeded: b)
        return p.evenHalf &+ p.oddHalf
    }

    /// Σ w·x over one 32-value block as four 32-bit lane sums.
    @inline(__always)
    static func blockDot(_ w0: SIMD16<Int16>, _ w1: SIMD16<Int16>, _ xq: UnsafePointer<Int16>) -> SIMD4<Int32> {
        let raw = UnsafeRawPointer(xq)
        let x0 = raw.loadUnaligned(as: SIMD16<Int16>.self)
        let x1 = raw.loadUnaligned(fromByteOffset: 32, as: SIMD16<Int16>.self)
        let p = multiplyAddPairs(w0, x0) &+ multiplyAddPairs(w1, x1)
        return p.lowHalf &+ p.highHalf
    }

    /// Shared driver of the 32-block integer kernels: for each weight row and each tile of tokens,
    /// `decode` unpacks a weight block once into (w0, w1, weight scale, weight offset), and every
    /// token of the tile accumulates `Float(Σ w·x)·(d_w·d_x)` in four lanes plus `m_w·(d_x·Σx)`.
    @inline(__always)
    static func int8Blocks(
        _ w: WeightMatrix, _ x: PreparedInput, _ rowRange: Range<Int>,
        _ out: UnsafeMutablePointer<Float>, _ outStride: Int, hasOffset: Bool,
        decode: (UnsafeRawPointer) -> (SIMD16<Int16>, SIMD16<Int16>, Float, Float)
    ) {
        let n = w.columns
        let blocks = n / 32
        let blockBytes = w.type.blockBytes
        let codes = UnsafePointer(x.codes.pointer)
        let xd = UnsafePointer(x.scales.pointer)
        let xs = UnsafePointer(x.sums.pointer)
        withUnsafeTemporaryAllocation(of: SIMD4<Float>.self, capacity: tokenTile) { lanes in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: tokenTile) { offsets in
                for j in rowRange {
                    let row = w.row(j)
                    var t0 = 0
                    while t0 < x.rows {
                        let tile = min(tokenTile, x.rows - t0)
                        for k in 0..<tile {
                            lanes[k] = SIMD4<Float>()
                            offsets[k] = 0
                        }
                        for b in 0..<blocks {
                            let (w0, w1, dw, mw) = decode(row + b * blockBytes)
                            for k in 0..<tile {
                                let t = t0 + k
                                let isum = blockDot(w0, w1, codes + t * n + b * 32)
                                lanes[k] += SIMD4<Float>(isum) * (dw * xd[t * blocks + b])
                                if hasOffset { offsets[k] += mw * xs[t * blocks + b] }
                            }
                        }
                        for k in 0..<tile {
                            out[(t0 + k) * outStride + j] = reduce(lanes[k]) + offsets[k]
                        }
                        t0 += tile
                    }
                }
            }
        }
    }

    static func q4_1Int8(
        _ w: WeightMatrix, _ x: PreparedInput, _ rowRange: Range<Int>,
        _ out: UnsafeMutablePointer<Float>, _ outStride: Int
    ) {
        let half = Half.table
        int8Blocks(w, x, rowRange, out, outStride, hasOffset: true) { p in
            let d = half[Int(p.loadUnaligned(as: UInt16.self))]
            let m = half[Int(p.loadUnaligned(fromByteOffset: 2, as: UInt16.self))]
            let raw = p.loadUnaligned(fromByteOffset: 4, as: SIMD16<UInt8>.self)
            return (
                SIMD16<Int16>(truncatingIfNeeded: raw & 0x0F), SIMD16<Int16>(truncatingIfNeeded: raw &>> 4), d, m
            )
        }
    }

    static func q4_0Int8(
        _ w: WeightMatrix, _ x: PreparedInput, _ rowRange: Range<Int>,
        _ out: UnsafeMutablePointer<Float>, _ outStride: Int
    ) {
        let half = Half.table
        int8Blocks(w, x, rowRange, out, outStride, hasOffset: false) { p in
            let d = half[Int(p.loadUnaligned(as: UInt16.self))]
            let raw = p.loadUnaligned(fromByteOffset: 2, as: SIMD16<UInt8>.self)
            let eight = SIMD16<Int16>(repeating: 8)
            return (
                SIMD16<Int16>(truncatingIfNeeded: raw & 0x0F) &- eight,
                SIMD16<Int16>(truncatingIfNeeded: raw &>> 4) &- eight, d, 0
            )
        }
    }

    static func q8_0Int8(
        _ w: WeightMatrix, _ x: PreparedInput, _ rowRange: Range<Int>,
        _ out: UnsafeMutablePointer<Float>, _ outStride: Int
    ) {
        let half = Half.table
        int8Blocks(w, x, rowRange, out, outStride, hasOffset: false) { p in
            let d = half[Int(p.loadUnaligned(as: UInt16.self))]
            let q0 = p.loadUnaligned(fromByteOffset: 2, as: SIMD16<Int8>.self)
            let q1 = p.loadUnaligned(fromByteOffset: 18, as: SIMD16<Int8>.self)
            return (SIMD16<Int16>(truncatingIfNeeded: q0), SIMD16<Int16>(truncatingIfNeeded: q1), d, 0)
        }
    }
}
