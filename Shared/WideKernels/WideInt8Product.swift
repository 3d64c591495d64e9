import QuantFormats

/// Half to float with the F16C instruction of this module's target.
struct HardwareHalf: HalfConversion {
    @inline(__always)
    func float(_ bits: UInt16) -> Float { Float(Float16(bitPattern: bits)) }
}

/// Integer products for batches, tokens in vector lanes: 512-bit vectors with AVX-512 VNNI, or 256-bit with AVX2.
///
/// This source is compiled twice (see Package.swift): as `WideKernels` for CPUs with AVX-512
/// VNNI and as `WideKernelsAVX2` for CPUs with AVX2; the rest of Hyperion stays portable x86-64
/// and calls in here only after checking the running CPU. Its entry points are
/// non-generic so that the block decoding and the products they use are specialised here, for
/// this module's target.
///
/// Layout: tokens in vector lanes. For each 16-token tile, the prepared activations hold, per
/// pair of columns, the 16 tokens' two 16-bit codes as one 32-bit lane each; a weight pair is
/// broadcast to all lanes, so one multiply-add advances 16 tokens by two columns with no
/// horizontal sums. Every lane performs the scalar sequence of the portable kernel — per 32-value
/// block the exact integer Σ w·x, then `acc += Float(Σ)·(d_w·d_x)` and `off += m_w·(d_x·Σx)`,
/// result `acc + off` — so results are bit-identical to it.
public enum WideInt8Product: FormatKernels {
    public typealias Operands = BatchOperands

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
                decodeRow(Format.self, row, blocks, into: target)
            }
            multiplyDecoded(
                UnsafeRawPointer(decoded), hasOffset: Format.hasOffset, rows: chunkEnd - chunkStart, blocks: blocks,
                firstRow: chunkStart, x)
            chunkStart = chunkEnd
        }
    }

    /// Decodes a row's blocks: Q4_1 and Q8_0 (the usual formats of a model's blocks and its
    /// output matrix) with whole-block vector operations, the others by their portable decoding
    /// specialised here. The values written are the same either way.
    @inline(__always)
    static func decodeRow<Format: Int8BlockFormat>(
        _: Format.Type, _ row: UnsafeRawPointer, _ blocks: Int, into target: UnsafeMutablePointer<DecodedBlock>
    ) {
        let out = UnsafeMutableRawPointer(target)
        let stride = MemoryLayout<DecodedBlock>.stride
        let scaleOffset = MemoryLayout<DecodedBlock>.offset(of: \DecodedBlock.d) ?? 64
        let minOffset = MemoryLayout<DecodedBlock>.offset(of: \DecodedBlock.m) ?? 68
        let secondScaleOffset = MemoryLayout<DecodedBlock>.offset(of: \DecodedBlock.d2) ?? 72
        if Format.self == Q4_1Format.self {
            for b in 0..<blocks {
                let p = row + b &* 20
                let raw = p.loadUnaligned(fromByteOffset: 4, as: SIMD16<UInt8>.self)
                let wide = SIMD16<Int16>(
                    lowHalf: SIMD8<Int16>(truncatingIfNeeded: raw.lowHalf),
                    highHalf: SIMD8<Int16>(truncatingIfNeeded: raw.highHalf))
                let block = out + b &* stride
                block.storeBytes(of: wide & 0x0F, as: SIMD16<Int16>.self)
                block.storeBytes(of: wide &>> 4, toByteOffset: 32, as: SIMD16<Int16>.self)
                block.storeBytes(of: Float(Float16(bitPattern: p.loadUnaligned(as: UInt16.self))), toByteOffset: scaleOffset, as: Float.self)
                block.storeBytes(
                    of: Float(Float16(bitPattern: p.loadUnaligned(fromByteOffset: 2, as: UInt16.self))),
                    toByteOffset: minOffset, as: Float.self)
                block.storeBytes(of: 0, toByteOffset: secondScaleOffset, as: Float.self)
            }
        } else if Format.self == Q8_0Format.self {
            for b in 0..<blocks {
                let p = row + b &* 34
                let raw = p.loadUnaligned(fromByteOffset: 2, as: SIMD32<Int8>.self)
                let block = out + b &* stride
                block.storeBytes(
                    of: SIMD32<Int16>(
                        lowHalf: SIMD16(
                            lowHalf: SIMD8<Int16>(truncatingIfNeeded: raw.lowHalf.lowHalf),
                            highHalf: SIMD8<Int16>(truncatingIfNeeded: raw.lowHalf.highHalf)),
                        highHalf: SIMD16(
                            lowHalf: SIMD8<Int16>(truncatingIfNeeded: raw.highHalf.lowHalf),
                            highHalf: SIMD8<Int16>(truncatingIfNeeded: raw.highHalf.highHalf))),
                    as: SIMD32<Int16>.self)
                block.storeBytes(of: Float(Float16(bitPattern: p.loadUnaligned(as: UInt16.self))), toByteOffset: scaleOffset, as: Float.self)
                block.storeBytes(of: 0, toByteOffset: minOffset, as: Float.self)
                block.storeBytes(of: 0, toByteOffset: secondScaleOffset, as: Float.self)
            }
        } else {
            for b in 0..<blocks { target[b] = Format.decode(row, b, HardwareHalf()) }
        }
    }

    /// Every tile against `rows` decoded rows. A tile with at most 4 or 8 tokens runs on 128-
    /// or 256-bit vectors (the first lanes of its 16-lane groups), so a small batch costs less.
    /// Built for 256-bit vectors (`HALF_WIDTH_TILES`, the AVX2 build), a fuller tile runs as two
    /// 8-lane halves: 16 lanes would need twice the registers that target has.
    @inline(__always)
    static func multiplyDecoded(
        _ decoded: UnsafeRawPointer, hasOffset: Bool, rows: Int, blocks: Int, firstRow: Int, _ x: Operands
    ) {
        var tile = 0
        while tile &* tileTokens < x.tokens {
            let lanes = min(tileTokens, x.tokens &- tile &* tileTokens)
            if lanes <= 4 {
                tileRows(Lanes4.self, decoded, hasOffset, rows, blocks, firstRow, tile, 0, lanes, x)
            } else if lanes <= 8 {
                tileRows(Lanes8.self, decoded, hasOffset, rows, blocks, firstRow, tile, 0, lanes, x)
            } else {
                #if HALF_WIDTH_TILES
                tileRows(Lanes8.self, decoded, hasOffset, rows, blocks, firstRow, tile, 0, 8, x)
                if lanes <= 12 {
                    tileRows(Lanes4.self, decoded, hasOffset, rows, blocks, firstRow, tile, 8, lanes &- 8, x)
                } else {
                    tileRows(Lanes8.self, decoded, hasOffset, rows, blocks, firstRow, tile, 8, lanes &- 8, x)
                }
                #else
                tileRows(Lanes16.self, decoded, hasOffset, rows, blocks, firstRow, tile, 0, lanes, x)
                #endif
            }
            tile &+= 1
        }
    }

    /// One tile's lanes `firstLane..<firstLane+lanes` against every decoded row, four rows at a
    /// time (the last pass repeats its final row where fewer remain and stores each row once).
    @inline(__always)
    static func tileRows<L: Lanes>(
        _: L.Type, _ decoded: UnsafeRawPointer, _ hasOffset: Bool, _ rows: Int, _ blocks: Int, _ firstRow: Int,
        _ tile: Int, _ firstLane: Int, _ lanes: Int, _ x: Operands
    ) {
        let rowStride = blocks &* MemoryLayout<DecodedBlock>.stride
        let pairOffset: Int = tile &* blocks &* 16 &* 64 &+ firstLane &* 4
        let tilePairs = x.pairs + pairOffset
        let laneOffset: Int = (tile &* tileTokens &+ firstLane) &* 4
        let scales = x.scales + laneOffset
        let sums = x.sums + laneOffset
        let last = rows &- 1
        var r = 0
        while r < rows {
            let r1 = min(r &+ 1, last)
            let r2 = min(r &+ 2, last)
            let r3 = min(r &+ 3, last)
            let v = fourRows(
                L.self, decoded + r &* rowStride, decoded + r1 &* rowStride, decoded + r2 &* rowStride,
                decoded + r3 &* rowStride, hasOffset: hasOffset, blocks: blocks, pairs: tilePairs, scales: scales,
                sums: sums, paddedTokens: x.paddedTokens)
            store(v.0, row: firstRow &+ r, tile: tile, firstLane: firstLane, lanes: lanes, x)
            if r1 != r { store(v.1, row: firstRow &+ r1, tile: tile, firstLane: firstLane, lanes: lanes, x) }
            if r2 != r1 { store(v.2, row: firstRow &+ r2, tile: tile, firstLane: firstLane, lanes: lanes, x) }
            if r3 != r2 { store(v.3, row: firstRow &+ r3, tile: tile, firstLane: firstLane, lanes: lanes, x) }
            r &+= 4
        }
    }

    @inline(__always)
    static func store<V: SIMD>(_ v: V, row: Int, tile: Int, firstLane: Int, lanes: Int, _ x: Operands) where V.Scalar == Float {
        let base = tile &* tileTokens &+ firstLane
        for l in 0..<lanes { x.out[(base &+ l) &* x.outStride &+ row] = v[l] }
    }

    /// Four weight rows against one tile: each load of activation pairs serves all four.
    @inline(__always)
    static func fourRows<L: Lanes>(
        _: L.Type, _ w0: UnsafeRawPointer, _ w1: UnsafeRawPointer, _ w2: UnsafeRawPointer, _ w3: UnsafeRawPointer,
        hasOffset: Bool, blocks: Int, pairs: UnsafeRawPointer, scales: UnsafeRawPointer, sums: UnsafeRawPointer,
        paddedTokens: Int
    ) -> (L.Floats, L.Floats, L.Floats, L.Floats) {
        let blockStride = MemoryLayout<DecodedBlock>.stride
        let scaleOffset = MemoryLayout<DecodedBlock>.offset(of: \DecodedBlock.d) ?? 64
        let offsetOffset = MemoryLayout<DecodedBlock>.offset(of: \DecodedBlock.m) ?? 68
        var acc0 = L.Floats(), acc1 = L.Floats(), acc2 = L.Floats(), acc3 = L.Floats()
        var off0 = L.Floats(), off1 = L.Floats(), off2 = L.Floats(), off3 = L.Floats()
        for b in 0..<blocks {
            let x = pairs + b &* 16 &* 64
            let b0 = w0 + b &* blockStride
            let b1 = w1 + b &* blockStride
            let b2 = w2 + b &* blockStride
            let b3 = w3 + b &* blockStride
            // Two accumulators per row (even and odd pairs) keep each multiply-add fused with its
            // sum; integer sums are exact in any order.
            var s0 = L.Sums(), s1 = L.Sums(), s2 = L.Sums(), s3 = L.Sums()
            var t0 = L.Sums(), t1 = L.Sums(), t2 = L.Sums(), t3 = L.Sums()
            for p in stride(from: 0, to: 16, by: 2) {
                let xp = x.loadUnaligned(fromByteOffset: p &* 64, as: L.Codes.self)
                let xq = x.loadUnaligned(fromByteOffset: p &* 64 &+ 64, as: L.Codes.self)
                let o = p &* 4
                s0 = L.multiplyAdd(s0, xp, b0.loadUnaligned(fromByteOffset: o, as: Int32.self))
                s1 = L.multiplyAdd(s1, xp, b1.loadUnaligned(fromByteOffset: o, as: Int32.self))
                s2 = L.multiplyAdd(s2, xp, b2.loadUnaligned(fromByteOffset: o, as: Int32.self))
                s3 = L.multiplyAdd(s3, xp, b3.loadUnaligned(fromByteOffset: o, as: Int32.self))
                t0 = L.multiplyAdd(t0, xq, b0.loadUnaligned(fromByteOffset: o &+ 4, as: Int32.self))
                t1 = L.multiplyAdd(t1, xq, b1.loadUnaligned(fromByteOffset: o &+ 4, as: Int32.self))
                t2 = L.multiplyAdd(t2, xq, b2.loadUnaligned(fromByteOffset: o &+ 4, as: Int32.self))
                t3 = L.multiplyAdd(t3, xq, b3.loadUnaligned(fromByteOffset: o &+ 4, as: Int32.self))
            }
            let dx = scales.loadUnaligned(fromByteOffset: b &* paddedTokens &* 4, as: L.Floats.self)
            acc0 += L.toFloat(s0 &+ t0) * (b0.loadUnaligned(fromByteOffset: scaleOffset, as: Float.self) * dx)
            acc1 += L.toFloat(s1 &+ t1) * (b1.loadUnaligned(fromByteOffset: scaleOffset, as: Float.self) * dx)
            acc2 += L.toFloat(s2 &+ t2) * (b2.loadUnaligned(fromByteOffset: scaleOffset, as: Float.self) * dx)
            acc3 += L.toFloat(s3 &+ t3) * (b3.loadUnaligned(fromByteOffset: scaleOffset, as: Float.self) * dx)
            if hasOffset {
                let sx = sums.loadUnaligned(fromByteOffset: b &* paddedTokens &* 4, as: L.Floats.self)
                off0 += b0.loadUnaligned(fromByteOffset: offsetOffset, as: Float.self) * sx
                off1 += b1.loadUnaligned(fromByteOffset: offsetOffset, as: Float.self) * sx
                off2 += b2.loadUnaligned(fromByteOffset: offsetOffset, as: Float.self) * sx
                off3 += b3.loadUnaligned(fromByteOffset: offsetOffset, as: Float.self) * sx
            }
        }
        return (acc0 + off0, acc1 + off1, acc2 + off2, acc3 + off3)
    }
}

/// A vector width for the token lanes: 32-bit sums and floats, and the 16-bit codes of a column
/// pair per lane (twice as many 16-bit lanes).
protocol Lanes {
    associatedtype Sums: SIMD where Sums.Scalar == Int32
    associatedtype Codes: SIMD where Codes.Scalar == Int16
    associatedtype Floats: SIMD where Floats.Scalar == Float
    /// `acc + pmaddwd(codes, pair in every lane)`: one `vpdpwssd`.
    static func multiplyAdd(_ acc: Sums, _ codes: Codes, _ pair: Int32) -> Sums
    static func toFloat(_ v: Sums) -> Floats
}

/// The 32-bit widening of 16-bit lanes, built from 128-bit conversions: a whole-vector
/// conversion of a wider vector is scalarised, and then not recognised as `vpdpwssd`. Lane by
/// lane: the library's generic conversion is not always inlined (for `haswell` it was a call
/// per use), and LLVM turns these lanes into one sign extension once they are.
@inline(__always)
func widen(_ a: SIMD8<Int16>) -> SIMD8<Int32> {
    SIMD8<Int32>(Int32(a[0]), Int32(a[1]), Int32(a[2]), Int32(a[3]), Int32(a[4]), Int32(a[5]), Int32(a[6]), Int32(a[7]))
}

@inline(__always)
func widen(_ a: SIMD16<Int16>) -> SIMD16<Int32> { SIMD16(lowHalf: widen(a.lowHalf), highHalf: widen(a.highHalf)) }

@inline(__always)
func widen(_ a: SIMD32<Int16>) -> SIMD32<Int32> { SIMD32(lowHalf: widen(a.lowHalf), highHalf: widen(a.highHalf)) }

enum Lanes4: Lanes {
    @inline(__always)
    static func multiplyAdd(_ acc: SIMD4<Int32>, _ codes: SIMD8<Int16>, _ pair: Int32) -> SIMD4<Int32> {
        let p = widen(codes) &* widen(unsafeBitCast(SIMD4<Int32>(repeating: pair), to: SIMD8<Int16>.self))
        return acc &+ (p.evenHalf &+ p.oddHalf)
    }

    @inline(__always)
    static func toFloat(_ v: SIMD4<Int32>) -> SIMD4<Float> { SIMD4<Float>(v) }
}

enum Lanes8: Lanes {
    @inline(__always)
    static func multiplyAdd(_ acc: SIMD8<Int32>, _ codes: SIMD16<Int16>, _ pair: Int32) -> SIMD8<Int32> {
        let p = widen(codes) &* widen(unsafeBitCast(SIMD8<Int32>(repeating: pair), to: SIMD16<Int16>.self))
        return acc &+ (p.evenHalf &+ p.oddHalf)
    }

    @inline(__always)
    static func toFloat(_ v: SIMD8<Int32>) -> SIMD8<Float> {
        SIMD8(lowHalf: SIMD4<Float>(v.lowHalf), highHalf: SIMD4<Float>(v.highHalf))
    }
}

enum Lanes16: Lanes {
    @inline(__always)
    static func multiplyAdd(_ acc: SIMD16<Int32>, _ codes: SIMD32<Int16>, _ pair: Int32) -> SIMD16<Int32> {
        let p = widen(codes) &* widen(unsafeBitCast(SIMD16<Int32>(repeating: pair), to: SIMD32<Int16>.self))
        return acc &+ (p.evenHalf &+ p.oddHalf)
    }

    @inline(__always)
    static func toFloat(_ v: SIMD16<Int32>) -> SIMD16<Float> {
        SIMD16(lowHalf: Lanes8.toFloat(v.lowHalf), highHalf: Lanes8.toFloat(v.highHalf))
    }
}
