import QuantFormats

/// Integer products for one token against many weight rows — the decode step of a single
/// request, which the batched layout (tokens in vector lanes) cannot speed up.
///
/// Each block's 32 weight codes come out of one 256-bit register, meet the token's codes in two
/// 16-bit multiply-adds, and leave 8 lanes of pair sums; eight blocks' sums go through one
/// reduction tree to their exact totals. From there every element performs the scalar steps of
/// the portable kernel in block order — `acc += Float(Σ)·(d_w·d_x)` and `off += m_w·(d_x·Σx)`,
/// result `acc + off` — so results are bit-identical to it. Formats with one scale per 32 values
/// (Q4_0, Q4_1, Q8_0, and Q4_K's sub-blocks); Q6_K stays on the portable kernel.
public enum SingleTokenProduct: FormatKernels {
    public typealias Operands = SingleTokenOperands

    /// Rows `rows` of a matrix whose rows are `rowBytes` apart from `weights`, `blocks` 32-value
    /// blocks each; one entry point per format, so that each is specialised here, for this module's
    /// target.
    public static func q4_1(_ weights: UnsafeRawPointer, rowBytes: Int, rows: Range<Int>, blocks: Int, _ x: Operands) {
        byteProduct(Q4_1Bytes.self, weights, rowBytes, rows, blocks, x)
    }

    public static func q4_0(_ weights: UnsafeRawPointer, rowBytes: Int, rows: Range<Int>, blocks: Int, _ x: Operands) {
        byteProduct(Q4_0Bytes.self, weights, rowBytes, rows, blocks, x)
    }

    public static func q8_0(_ weights: UnsafeRawPointer, rowBytes: Int, rows: Range<Int>, blocks: Int, _ x: Operands) {
        byteProduct(Q8_0Bytes.self, weights, rowBytes, rows, blocks, x)
    }

    public static func q4_K(_ weights: UnsafeRawPointer, rowBytes: Int, rows: Range<Int>, blocks: Int, _ x: Operands) {
        byteProduct(Q4_KBytes.self, weights, rowBytes, rows, blocks, x)
    }


    /// Row by row, in memory order: one row's blocks eight at a time give their pair sums, one
    /// reduction tree turns the eight vectors into the eight blocks' exact totals (block `k` in
    /// lane `k`), their products with the scales are formed lane-wise, and the row's accumulators
    /// add them in block order. (Eight rows side by side, each block of the token's codes serving
    /// all eight, ran 3× faster while the weights stayed in cache and half as fast as the portable
    /// kernel on a 30 MB matrix: eight interleaved streams defeated the hardware prefetcher.)
    ///
    /// Several tokens go through each row together, three at a time: the row is read from memory
    /// once, and the tokens' accumulators, one per vector lane, are independent chains that
    /// overlap. Each lane adds exactly what the one-token accumulator adds, in the same order.
    /// (From four tokens the batch kernel's lanes are faster: `MatMul.wideMinimumTokens`.)
    @inline(__always)
    static func byteProduct<Format: ByteBlocks>(
        _: Format.Type, _ weights: UnsafeRawPointer, _ rowBytes: Int, _ rows: Range<Int>, _ blocks: Int, _ x: Operands
    ) {
        if x.tokens == 1 {
            for j in rows {
                x.out[j] = rowProduct(Format.self, weights + j &* rowBytes, blocks, x)
            }
            return
        }
        for j in rows {
            let row = weights + j &* rowBytes
            var first = 0
            while first < x.tokens {
                let count = min(3, x.tokens &- first)
                if count == 1 {
                    x.out[first &* x.outStride &+ j] = rowProduct(Format.self, row, blocks, x.token(first, blocks))
                } else {
                    let r = count == 3
                        ? rowProducts(Format.self, row, blocks, x, first, count: 3) : rowProducts(Format.self, row, blocks, x, first, count: 2)
                    for t in 0..<count { x.out[(first &+ t) &* x.outStride &+ j] = r[t] }
                }
                first &+= count
            }
        }
    }

    /// `rowProduct` for tokens `first ..< first + count` (count 2 or 3), one per lane.
    @inline(__always)
    static func rowProducts<Format: ByteBlocks>(
        _: Format.Type, _ row: UnsafeRawPointer, _ blocks: Int, _ x: Operands, _ first: Int, count: Int
    ) -> SIMD4<Float> {
        var acc = SIMD4<Float>()
        var off = SIMD4<Float>()
        // With two tokens the third lane reads the second again and is not returned.
        let x0 = x.token(first, blocks), x1 = x.token(first &+ 1, blocks), x2 = x.token(first &+ count &- 1, blocks)
        var b = 0
        while b &+ 8 <= blocks {
            let t0 = blockTotals(Format.self, row, b, x0), t1 = blockTotals(Format.self, row, b, x1)
            let t2 = count > 2 ? blockTotals(Format.self, row, b, x2) : SIMD8<Float>()
            let (d, m) = scales(Format.self, row, b)
            let p0 = products(t0, d, x0, b), p1 = products(t1, d, x1, b), p2 = products(t2, d, x2, b)
            for k in 0..<8 { acc += SIMD4(p0[k], p1[k], p2[k], 0) }
            if Format.hasOffset {
                let q0 = m * UnsafeRawPointer(x0.sums + b).loadUnaligned(as: SIMD8<Float>.self)
                let q1 = m * UnsafeRawPointer(x1.sums + b).loadUnaligned(as: SIMD8<Float>.self)
                let q2 = m * UnsafeRawPointer(x2.sums + b).loadUnaligned(as: SIMD8<Float>.self)
                for k in 0..<8 { off += SIMD4(q0[k], q1[k], q2[k], 0) }
            }
            b &+= 8
        }
        while b < blocks {
            let (d, m) = Format.scales(row, b)
            for t in 0..<count {
                let xt = t == 0 ? x0 : t == 1 ? x1 : x2
                let v = sums(Format.self, row, b, xt)
                let h = v.lowHalf &+ v.highHalf
                let total = (h[0] &+ h[2]) &+ (h[1] &+ h[3])
                acc[t] += Float(total) * (d * xt.scales[b])
                if Format.hasOffset { off[t] += m * xt.sums[b] }
            }
            b &+= 1
        }
        return acc + off
    }

    /// Blocks `b ..< b + 8`'s scales and offsets, block `k` in lane `k`.
    @inline(__always)
    static func scales<Format: ByteBlocks>(_: Format.Type, _ row: UnsafeRawPointer, _ b: Int) -> (d: SIMD8<Float>, m: SIMD8<Float>) {
        let s0 = Format.scales(row, b), s1 = Format.scales(row, b &+ 1), s2 = Format.scales(row, b &+ 2)
        let s3 = Format.scales(row, b &+ 3), s4 = Format.scales(row, b &+ 4), s5 = Format.scales(row, b &+ 5)
        let s6 = Format.scales(row, b &+ 6), s7 = Format.scales(row, b &+ 7)
        return (
            SIMD8(s0.d, s1.d, s2.d, s3.d, s4.d, s5.d, s6.d, s7.d), SIMD8(s0.m, s1.m, s2.m, s3.m, s4.m, s5.m, s6.m, s7.m)
        )
    }

    /// One token's exact totals for blocks `b ..< b + 8` as floats, block `k` in lane `k`.
    @inline(__always)
    static func blockTotals<Format: ByteBlocks>(_: Format.Type, _ row: UnsafeRawPointer, _ b: Int, _ x: Operands) -> SIMD8<Float> {
        Lanes8.toFloat(totals(
            sums(Format.self, row, b, x), sums(Format.self, row, b &+ 1, x), sums(Format.self, row, b &+ 2, x),
            sums(Format.self, row, b &+ 3, x), sums(Format.self, row, b &+ 4, x), sums(Format.self, row, b &+ 5, x),
            sums(Format.self, row, b &+ 6, x), sums(Format.self, row, b &+ 7, x)))
    }

    /// The block products `Σ·(d_w·d_x)` of one token for blocks `b ..< b + 8`.
    @inline(__always)
    static func products(_ totals: SIMD8<Float>, _ d: SIMD8<Float>, _ x: Operands, _ b: Int) -> SIMD8<Float> {
        totals * (d * UnsafeRawPointer(x.scales + b).loadUnaligned(as: SIMD8<Float>.self))
    }

    @inline(__always)
    static func rowProduct<Format: ByteBlocks>(_: Format.Type, _ row: UnsafeRawPointer, _ blocks: Int, _ x: Operands) -> Float {
        var acc: Float = 0
        var off: Float = 0
        var b = 0
        while b &+ 8 <= blocks {
            let t = blockTotals(Format.self, row, b, x)
            let (d, m) = scales(Format.self, row, b)
            let p = products(t, d, x, b)
            acc += p[0]
            acc += p[1]
            acc += p[2]
            acc += p[3]
            acc += p[4]
            acc += p[5]
            acc += p[6]
            acc += p[7]
            if Format.hasOffset {
                let q = m * UnsafeRawPointer(x.sums + b).loadUnaligned(as: SIMD8<Float>.self)
                off += q[0]
                off += q[1]
                off += q[2]
                off += q[3]
                off += q[4]
                off += q[5]
                off += q[6]
                off += q[7]
            }
            b &+= 8
        }
        while b < blocks {
            let v = sums(Format.self, row, b, x)
            let h = v.lowHalf &+ v.highHalf
            let total = (h[0] &+ h[2]) &+ (h[1] &+ h[3])
            let (d, m) = Format.scales(row, b)
            acc += Float(total) * (d * x.scales[b])
            if Format.hasOffset { off += m * x.sums[b] }
            b &+= 1
        }
        return acc + off
    }

    /// Block `b`'s pair sums against the token's codes of that block.
    @inline(__always)
    static func sums<Format: ByteBlocks>(_: Format.Type, _ row: UnsafeRawPointer, _ b: Int, _ x: Operands) -> SIMD8<Int32> {
        let split = x.split + b &* 64
        return Format.sums(
            row, b, split.loadUnaligned(as: SIMD16<Int16>.self), split.loadUnaligned(fromByteOffset: 32, as: SIMD16<Int16>.self))
    }

    /// `pmaddwd` at 256 bits: products of 16-bit lanes, adjacent pairs added into 32 bits.
    @inline(__always)
    static func multiplyAddPairs(_ a: SIMD16<Int16>, _ b: SIMD16<Int16>) -> SIMD8<Int32> {
        let p = widen(a) &* widen(b)
        return p.evenHalf &+ p.oddHalf
    }

    /// Adjacent lanes of `a` then of `b` added: `[a0+a1, a2+a3, …, b6+b7]`.
    @inline(__always)
    static func adjacentSums(_ a: SIMD8<Int32>, _ b: SIMD8<Int32>) -> SIMD8<Int32> {
        let both = SIMD16(lowHalf: a, highHalf: b)
        return both.evenHalf &+ both.oddHalf
    }

    /// The exact totals of eight vectors' lane sums, vector `i`'s in lane `i` (integer sums: the
    /// tree's order does not change them).
    @inline(__always)
    static func totals(
        _ s0: SIMD8<Int32>, _ s1: SIMD8<Int32>, _ s2: SIMD8<Int32>, _ s3: SIMD8<Int32>, _ s4: SIMD8<Int32>,
        _ s5: SIMD8<Int32>, _ s6: SIMD8<Int32>, _ s7: SIMD8<Int32>
    ) -> SIMD8<Int32> {
        adjacentSums(
            adjacentSums(adjacentSums(s0, s1), adjacentSums(s2, s3)), adjacentSums(adjacentSums(s4, s5), adjacentSums(s6, s7)))
    }
}

extension SingleTokenOperands {
    /// Token `t` alone (its codes, scales and sums; output row 0 of `out` is its row).
    @inline(__always)
    func token(_ t: Int, _ blocks: Int) -> SingleTokenOperands {
        SingleTokenOperands(
            split: split + t &* blocks &* 64, scales: scales + t &* blocks, sums: sums + t &* blocks,
            out: out + t &* outStride)
    }
}

/// A format whose block's 32 codes load as 32 bytes in order (nibbles unpacked by one shift and
/// mask), with one scale (and offset) per block, read exactly as `Int8BlockFormat.decode` reads them.
protocol ByteBlocks {
    static var hasOffset: Bool { get }
    /// The block's pair sums against the token's even and odd codes: 8 lanes totalling Σ w·x.
    static func sums(_ row: UnsafeRawPointer, _ b: Int, _ even: SIMD16<Int16>, _ odd: SIMD16<Int16>) -> SIMD8<Int32>
    static func scales(_ row: UnsafeRawPointer, _ b: Int) -> (d: Float, m: Float)
}

extension ByteBlocks {
    /// Sums for 32 codes held as bytes 0–31 of `codes`, unsigned less `minus` (or, `signed`, two's
    /// complement).
    @inline(__always)
    static func byteSums(_ codes: SIMD8<UInt32>, signed: Bool, minus: Int16, _ even: SIMD16<Int16>, _ odd: SIMD16<Int16>) -> SIMD8<Int32> {
        let lanes = unsafeBitCast(codes, to: SIMD16<Int16>.self)
        if signed {
            // Each byte as 256 × its value, in place (a sign extension of the low byte was
            // compiled to a widening, two shifts and a narrowing); every pair sum is then a
            // multiple of 256 that fits 32 bits, and one exact shift removes the factor.
            let scaledLow = lanes &<< 8
            let scaledHigh = lanes & SIMD16(repeating: Int16(bitPattern: 0xFF00))
            let sums = SingleTokenProduct.multiplyAddPairs(scaledLow, even) &+ SingleTokenProduct.multiplyAddPairs(scaledHigh, odd)
            return sums &>> 8
        }
        var low = lanes & 0x00FF
        var high = unsafeBitCast(unsafeBitCast(lanes, to: SIMD16<UInt16>.self) &>> 8, to: SIMD16<Int16>.self)
        if minus != 0 {
            low &-= SIMD16(repeating: minus)
            high &-= SIMD16(repeating: minus)
        }
        return SingleTokenProduct.multiplyAddPairs(low, even) &+ SingleTokenProduct.multiplyAddPairs(high, odd)
    }

    /// Sixteen bytes of nibbles as 32 bytes: low nibbles (codes 0–15), then high nibbles (16–31).
    @inline(__always)
    static func nibbles(_ p: UnsafeRawPointer) -> SIMD8<UInt32> {
        let raw = p.loadUnaligned(as: SIMD4<UInt32>.self)
        return SIMD8(lowHalf: raw & 0x0F0F_0F0F, highHalf: (raw &>> 4) & 0x0F0F_0F0F)
    }
}

enum Q4_1Bytes: ByteBlocks {
    static var hasOffset: Bool { true }
    @inline(__always)
    static func sums(_ row: UnsafeRawPointer, _ b: Int, _ even: SIMD16<Int16>, _ odd: SIMD16<Int16>) -> SIMD8<Int32> {
        byteSums(nibbles(row + (b &* 20 &+ 4)), signed: false, minus: 0, even, odd)
    }
    @inline(__always)
    static func scales(_ row: UnsafeRawPointer, _ b: Int) -> (d: Float, m: Float) {
        let p = row + b &* 20
        let half = HardwareHalf()
        return (half.float(p.loadUnaligned(as: UInt16.self)), half.float(p.loadUnaligned(fromByteOffset: 2, as: UInt16.self)))
    }
}

enum Q4_0Bytes: ByteBlocks {
    static var hasOffset: Bool { false }
    @inline(__always)
    static func sums(_ row: UnsafeRawPointer, _ b: Int, _ even: SIMD16<Int16>, _ odd: SIMD16<Int16>) -> SIMD8<Int32> {
        byteSums(nibbles(row + (b &* 18 &+ 2)), signed: false, minus: 8, even, odd)
    }
    @inline(__always)
    static func scales(_ row: UnsafeRawPointer, _ b: Int) -> (d: Float, m: Float) {
        (HardwareHalf().float((row + b &* 18).loadUnaligned(as: UInt16.self)), 0)
    }
}

enum Q8_0Bytes: ByteBlocks {
    static var hasOffset: Bool { false }
    @inline(__always)
    static func sums(_ row: UnsafeRawPointer, _ b: Int, _ even: SIMD16<Int16>, _ odd: SIMD16<Int16>) -> SIMD8<Int32> {
        byteSums((row + (b &* 34 &+ 2)).loadUnaligned(as: SIMD8<UInt32>.self), signed: true, minus: 0, even, odd)
    }
    @inline(__always)
    static func scales(_ row: UnsafeRawPointer, _ b: Int) -> (d: Float, m: Float) {
        (HardwareHalf().float((row + b &* 34).loadUnaligned(as: UInt16.self)), 0)
    }
}

/// Q4_K's 32-value sub-block `b & 7` of super-block `b >> 3`: 32 bytes whose low (even `j`) or
/// high (odd `j`) nibbles are its codes in order; scale and offset as `Q4_KFormat.decode` forms them.
enum Q4_KBytes: ByteBlocks {
    static var hasOffset: Bool { true }
    @inline(__always)
    static func sums(_ row: UnsafeRawPointer, _ b: Int, _ even: SIMD16<Int16>, _ odd: SIMD16<Int16>) -> SIMD8<Int32> {
        let j = b & 7
        let bytes = row + ((b >> 3) &* 144 &+ 16 &+ (j >> 1) &* 32)
        let shift: UInt32 = j & 1 == 0 ? 0 : 4
        let codes = (bytes.loadUnaligned(as: SIMD8<UInt32>.self) &>> shift) & 0x0F0F_0F0F
        return byteSums(codes, signed: false, minus: 0, even, odd)
    }
    @inline(__always)
    static func scales(_ row: UnsafeRawPointer, _ b: Int) -> (d: Float, m: Float) {
        let p = row + (b >> 3) &* 144
        let (scale, minimum) = Q4_KFormat.scaleMin(p + 4, b & 7)
        let half = HardwareHalf()
        let d: Float = half.float(p.loadUnaligned(as: UInt16.self)) * Float(scale)
        let dmin: Float = half.float(p.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
        return (d, -(dmin * Float(minimum)))
    }
}
