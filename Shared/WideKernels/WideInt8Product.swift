import QuantFormats

/// Half to float with the F16C instruction of this module's target.
struct HardwareHalf: HalfConversion {
    @inline(__always)
    func float(_ bits: UInt16) -> Float { Float(Float16(bitPattern: bits)) }
}

/// Integer products with 512-bit vectors, for CPUs with AVX-512 VNNI.
///
/// This module alone is compiled for such a CPU (see Package.swift); the rest of Hyperion stays
/// portable x86-64 and calls in here only after checking the running CPU. Its entry points are
/// non-generic so that the block decoding and the products they use are specialised here, for
/// this module's target.
///
/// Layout: tokens in vector lanes. For each 16-token tile, the prepared activations hold, per
/// pair of columns, the 16 tokens' two 16-bit codes as one 32-bit lane each; a weight pair is
/// broadcast to all lanes, so one multiply-add advances 16 tokens by two columns with no
/// horizontal sums. Every lane performs the scalar sequence of the portable kernel — per 32-value
/// block the exact integer Σ w·x, then `acc += Float(Σ)·(d_w·d_x)` and `off += m_w·(d_x·Σx)`,
/// result `acc + off` — so results are bit-identical to it.
public enum WideInt8Product {
    /// The batch and output a call works on.
    ///
    /// - pairs: per tile, per column pair, 16 lanes of two Int16 codes (64 bytes).
    /// - scales, sums: `[block][paddedTokens]` floats, `d_x` and `d_x·Σx`, zero past `tokens`.
    /// - scratch: room for `rowChunk` rows of decoded blocks, 64-byte aligned.
    /// Rows are decoded `rowChunk` at a time; every tile passes over them while they stay in cache.
    public struct Operands {
        public var pairs: UnsafeRawPointer
        public var scales: UnsafeRawPointer
        public var sums: UnsafeRawPointer
        public var tokens: Int
        public var paddedTokens: Int
        public var out: UnsafeMutablePointer<Float>
        public var outStride: Int
        public var scratch: UnsafeMutableRawPointer
        /// Rows decoded together (the scratch holds this many rows of decoded blocks).
        public var rowChunk: Int

        public init(
            pairs: UnsafeRawPointer, scales: UnsafeRawPointer, sums: UnsafeRawPointer, tokens: Int, paddedTokens: Int,
            out: UnsafeMutablePointer<Float>, outStride: Int, scratch: UnsafeMutableRawPointer, rowChunk: Int
        ) {
            self.pairs = pairs
            self.scales = scales
            self.sums = sums
            self.tokens = tokens
            self.paddedTokens = paddedTokens
            self.out = out
            self.outStride = outStride
            self.scratch = scratch
            self.rowChunk = rowChunk
        }
    }

    /// Rows `rows` of a matrix whose rows are `rowBytes` apart from `weights`, one entry point per
    /// format with one scale per 32 values.
    public static func q4_1(_ weights: UnsafeRawPointer, rowBytes: Int, rows: Range<Int>, blocks: Int, _ x: Operands) {
        product(Q4_1Format.self, weights, rowBytes, rows, blocks, x)
    }

    public static func q4_0(_ weights: UnsafeRawPointer, rowBytes: Int, rows: Range<Int>, blocks: Int, _ x: Operands) {
        product(Q4_0Format.self, weights, rowBytes, rows, blocks, x)
    }

    public static func q8_0(_ weights: UnsafeRawPointer, rowBytes: Int, rows: Range<Int>, blocks: Int, _ x: Operands) {
        product(Q8_0Format.self, weights, rowBytes, rows, blocks, x)
    }

    public static func q4_K(_ weights: UnsafeRawPointer, rowBytes: Int, rows: Range<Int>, blocks: Int, _ x: Operands) {
        product(Q4_KFormat.self, weights, rowBytes, rows, blocks, x)
    }

    static let tileTokens = 16

    @inline(__always)
    static func product<Format: Int8BlockFormat>(
        _: Format.Type, _ weights: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>, _ blocks: Int, _ x: Operands
    ) {
        let rowChunk = x.rowChunk
        let decoded = x.scratch.bindMemory(to: DecodedBlock.self, capacity: rowChunk * blocks)
        defer { x.scratch.bindMemory(to: Float.self, capacity: rowChunk * blocks * MemoryLayout<DecodedBlock>.stride / 4) }
        var chunkStart = rows.lowerBound
        while chunkStart < rows.upperBound {
            let chunkEnd = min(chunkStart + rowChunk, rows.upperBound)
            for j in chunkStart..<chunkEnd {
                let row = weights + j * rowBytes
                let target = decoded + (j - chunkStart) * blocks
                for b in 0..<blocks { target[b] = Format.decode(row, b, HardwareHalf()) }
            }
            multiplyDecoded(
                UnsafeRawPointer(decoded), hasOffset: Format.hasOffset, rows: chunkEnd - chunkStart, blocks: blocks,
                firstRow: chunkStart, x)
            chunkStart = chunkEnd
        }
    }

    /// Every tile against `rows` decoded rows.
    @inline(__always)
    static func multiplyDecoded(
        _ decoded: UnsafeRawPointer, hasOffset: Bool, rows: Int, blocks: Int, firstRow: Int, _ x: Operands
    ) {
        let blockStride = MemoryLayout<DecodedBlock>.stride
        var tile = 0
        while tile &* tileTokens < x.tokens {
            let lanes = min(tileTokens, x.tokens &- tile &* tileTokens)
            let tilePairs = x.pairs + tile &* blocks &* 16 &* 64
            let scales = x.scales + tile &* tileTokens &* 4
            let sums = x.sums + tile &* tileTokens &* 4
            var r = 0
            while r < rows {
                let second = min(r &+ 1, rows &- 1)
                let (v0, v1) = twoRows(
                    decoded + r &* blocks &* blockStride, decoded + second &* blocks &* blockStride, hasOffset: hasOffset,
                    blocks: blocks, pairs: tilePairs, scales: scales, sums: sums, paddedTokens: x.paddedTokens)
                store(v0, row: firstRow &+ r, tile: tile, lanes: lanes, x)
                if second != r { store(v1, row: firstRow &+ second, tile: tile, lanes: lanes, x) }
                r &+= 2
            }
            tile &+= 1
        }
    }

    @inline(__always)
    static func store(_ v: SIMD16<Float>, row: Int, tile: Int, lanes: Int, _ x: Operands) {
        let base = tile &* tileTokens
        for l in 0..<lanes { x.out[(base &+ l) &* x.outStride &+ row] = v[l] }
    }

    /// Two weight rows against one tile: the activation pairs are loaded once for both.
    @inline(__always)
    static func twoRows(
        _ w0: UnsafeRawPointer, _ w1: UnsafeRawPointer, hasOffset: Bool, blocks: Int, pairs: UnsafeRawPointer,
        scales: UnsafeRawPointer, sums: UnsafeRawPointer, paddedTokens: Int
    ) -> (SIMD16<Float>, SIMD16<Float>) {
        let blockStride = MemoryLayout<DecodedBlock>.stride
        let scaleOffset = MemoryLayout<DecodedBlock>.offset(of: \DecodedBlock.d) ?? 64
        let offsetOffset = MemoryLayout<DecodedBlock>.offset(of: \DecodedBlock.m) ?? 68
        var acc0 = SIMD16<Float>()
        var acc1 = SIMD16<Float>()
        var off0 = SIMD16<Float>()
        var off1 = SIMD16<Float>()
        for b in 0..<blocks {
            let x = pairs + b &* 16 &* 64
            let b0 = w0 + b &* blockStride
            let b1 = w1 + b &* blockStride
            // Two accumulators per row (even and odd pairs) keep each multiply-add fused with its
            // sum; integer sums are exact in any order.
            var s0 = SIMD16<Int32>()
            var s1 = SIMD16<Int32>()
            var t0 = SIMD16<Int32>()
            var t1 = SIMD16<Int32>()
            for p in stride(from: 0, to: 16, by: 2) {
                let xp = x.loadUnaligned(fromByteOffset: p &* 64, as: SIMD32<Int16>.self)
                let xq = x.loadUnaligned(fromByteOffset: p &* 64 &+ 64, as: SIMD32<Int16>.self)
                s0 = s0 &+ multiplyAddPairs(xp, broadcast(b0.loadUnaligned(fromByteOffset: p &* 4, as: Int32.self)))
                s1 = s1 &+ multiplyAddPairs(xp, broadcast(b1.loadUnaligned(fromByteOffset: p &* 4, as: Int32.self)))
                t0 = t0 &+ multiplyAddPairs(xq, broadcast(b0.loadUnaligned(fromByteOffset: p &* 4 &+ 4, as: Int32.self)))
                t1 = t1 &+ multiplyAddPairs(xq, broadcast(b1.loadUnaligned(fromByteOffset: p &* 4 &+ 4, as: Int32.self)))
            }
            s0 = s0 &+ t0
            s1 = s1 &+ t1
            let dx = scales.loadUnaligned(fromByteOffset: b &* paddedTokens &* 4, as: SIMD16<Float>.self)
            acc0 += toFloat(s0) * (b0.loadUnaligned(fromByteOffset: scaleOffset, as: Float.self) * dx)
            acc1 += toFloat(s1) * (b1.loadUnaligned(fromByteOffset: scaleOffset, as: Float.self) * dx)
            if hasOffset {
                let sx = sums.loadUnaligned(fromByteOffset: b &* paddedTokens &* 4, as: SIMD16<Float>.self)
                off0 += b0.loadUnaligned(fromByteOffset: offsetOffset, as: Float.self) * sx
                off1 += b1.loadUnaligned(fromByteOffset: offsetOffset, as: Float.self) * sx
            }
        }
        return (acc0 + off0, acc1 + off1)
    }

    /// Lane-wise conversion, by quarters: the whole-vector initializer is not inlined.
    @inline(__always)
    static func toFloat(_ v: SIMD16<Int32>) -> SIMD16<Float> {
        SIMD16(
            lowHalf: SIMD8(lowHalf: SIMD4<Float>(v.lowHalf.lowHalf), highHalf: SIMD4<Float>(v.lowHalf.highHalf)),
            highHalf: SIMD8(lowHalf: SIMD4<Float>(v.highHalf.lowHalf), highHalf: SIMD4<Float>(v.highHalf.highHalf)))
    }

    /// One 32-bit lane holding two 16-bit codes, repeated in every lane.
    @inline(__always)
    static func broadcast(_ pair: Int32) -> SIMD32<Int16> {
        unsafeBitCast(SIMD16<Int32>(repeating: pair), to: SIMD32<Int16>.self)
    }

    /// Pairwise 16-bit multiply-add into 32-bit lanes (one `vpdpwssd` with the accumulate).
    /// Widened half by half: a whole-vector conversion is not recognised as the pattern.
    @inline(__always)
    static func multiplyAddPairs(_ a: SIMD32<Int16>, _ b: SIMD32<Int16>) -> SIMD16<Int32> {
        let p = widen(a) &* widen(b)
        return p.evenHalf &+ p.oddHalf
    }

    @inline(__always)
    static func widen(_ a: SIMD32<Int16>) -> SIMD32<Int32> {
        SIMD32(
            lowHalf: SIMD16(
                lowHalf: SIMD8<Int32>(truncatingIfNeeded: a.lowHalf.lowHalf),
                highHalf: SIMD8<Int32>(truncatingIfNeeded: a.lowHalf.highHalf)),
            highHalf: SIMD16(
                lowHalf: SIMD8<Int32>(truncatingIfNeeded: a.highHalf.lowHalf),
                highHalf: SIMD8<Int32>(truncatingIfNeeded: a.highHalf.highHalf)))
    }
}
