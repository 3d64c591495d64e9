import QuantFormats
import GGUF

/// Reference dequantisation of GGML blocks: the plain, obviously-correct reading of each format.
///
/// These functions define what a quantized tensor *means*; the fast kernels are tested against them.
/// Each reads `count` values (a whole number of blocks) starting at `source` and writes floats.
enum Dequantize {
    static func row(type: GGMLType, from source: UnsafeRawPointer, count: Int, into out: UnsafeMutablePointer<Float>) {
        let blocks = count / type.blockElements
        for b in 0..<blocks {
            block(type: type, from: source + b * type.blockBytes, into: out + b * type.blockElements)
        }
    }

    /// One block (`type.blockElements` values).
    @inline(__always)
    static func block(type: GGMLType, from p: UnsafeRawPointer, into y: UnsafeMutablePointer<Float>) {
        switch type {
        case .f32:
            y[0] = p.loadUnaligned(as: Float.self)
        case .f16:
            y[0] = Half.table[Int(p.loadUnaligned(as: UInt16.self))]
        case .q8_0:
            // d: f16, qs: 32 × i8. x = d·q
            let d = half(p, 0)
            for j in 0..<32 { y[j] = d * Float(p.load(fromByteOffset: 2 + j, as: Int8.self)) }
        case .q4_0:
            // d: f16, qs: 16 bytes; low nibbles are values 0..15, high nibbles 16..31. x = d·(q − 8)
            let d = half(p, 0)
            for j in 0..<16 {
                let byte = p.load(fromByteOffset: 2 + j, as: UInt8.self)
                y[j] = d * Float(Int(byte & 0x0F) - 8)
                y[j + 16] = d * Float(Int(byte >> 4) - 8)
            }
        case .q4_1:
            // d: f16, m: f16, qs: 16 bytes. x = d·q + m
            let d = half(p, 0)
            let m = half(p, 2)
            for j in 0..<16 {
                let byte = p.load(fromByteOffset: 4 + j, as: UInt8.self)
                y[j] = d * Float(byte & 0x0F) + m
                y[j + 16] = d * Float(byte >> 4) + m
            }
        case .q4_K:
            q4K(p, y)
        case .q6_K:
            q6K(p, y)
        default:
            // Unsupported types are rejected when a model is loaded; never reached from a loaded model.
            for j in 0..<type.blockElements { y[j] = .nan }
        }
    }

    @inline(__always)
    static func half(_ p: UnsafeRawPointer, _ offset: Int) -> Float {
        Half.table[Int(p.loadUnaligned(fromByteOffset: offset, as: UInt16.self))]
    }

    /// Q4_K: d, dmin (f16), 12 bytes of 6-bit scales/mins for 8 sub-blocks of 32, 128 bytes of
    /// nibbles; each 32-byte group holds two sub-blocks (low nibbles, then high nibbles).
    /// x = d·scale·q − dmin·min
    static func q4K(_ p: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = half(p, 0)
        let dmin = half(p, 2)
        let scales = p + 4
        let qs = p + 16
        for group in 0..<4 {
            let (sc1, m1) = Q4_KFormat.scaleMin(scales, 2 * group)
            let (sc2, m2) = Q4_KFormat.scaleMin(scales, 2 * group + 1)
            let d1 = d * Float(sc1)
            let min1 = dmin * Float(m1)
            let d2 = d * Float(sc2)
            let min2 = dmin * Float(m2)
            for l in 0..<32 {
                let byte = qs.load(fromByteOffset: group * 32 + l, as: UInt8.self)
                y[group * 64 + l] = d1 * Float(byte & 0x0F) - min1
                y[group * 64 + 32 + l] = d2 * Float(byte >> 4) - min2
            }
        }
    }

    /// Q6_K: 128 bytes of low 4 bits, 64 bytes of high 2 bits, 16 signed 8-bit scales, d (f16).
    /// x = d·scale·(q − 32) over 16 sub-blocks of 16.
    static func q6K(_ p: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = half(p, 208)
        for half128 in 0..<2 {
            let ql = p + half128 * 64
            let qh = p + 128 + half128 * 32
            let sc = p + 192 + half128 * 8
            let out = y + half128 * 128
            for l in 0..<32 {
                let scaleIndex = l / 16
                let low0 = ql.load(fromByteOffset: l, as: UInt8.self)
                let low1 = ql.load(fromByteOffset: l + 32, as: UInt8.self)
                let high = qh.load(fromByteOffset: l, as: UInt8.self)
                let q1 = Int((low0 & 0x0F) | ((high & 3) << 4)) - 32
                let q2 = Int((low1 & 0x0F) | (((high >> 2) & 3) << 4)) - 32
                let q3 = Int((low0 >> 4) | (((high >> 4) & 3) << 4)) - 32
                let q4 = Int((low1 >> 4) | (((high >> 6) & 3) << 4)) - 32
                let s = { (i: Int) in Float(sc.load(fromByteOffset: scaleIndex + i, as: Int8.self)) }
                out[l] = d * s(0) * Float(q1)
                out[l + 32] = d * s(2) * Float(q2)
                out[l + 64] = d * s(4) * Float(q3)
                out[l + 96] = d * s(6) * Float(q4)
            }
        }
    }
}
