/// IEEE half-precision to single-precision conversion by table lookup.
///
/// Swift's default x86-64 target has no F16C, so `Float(Float16)` becomes a library call per value;
/// quantized blocks carry one or two half scales each, and a 256 KiB table read is far cheaper in
/// the kernels' inner loops. The table is exact (every half maps to the float of equal value).
enum Half {
    /// 65,536 floats, indexed by a half's bit pattern; allocated once and never freed.
    /// Safe to share: written once inside the lazy initialiser, read-only afterwards.
    nonisolated(unsafe) static let table: UnsafePointer<Float> = {
        let table = UnsafeMutablePointer<Float>.allocate(capacity: 1 << 16)
        for bits in 0..<(1 << 16) {
            table[bits] = halfBitsToFloat(UInt16(bits))
        }
        return UnsafePointer(table)
    }()

    /// The exact float value of a half given by its bits (no table; used to build the table).
    static func halfBitsToFloat(_ h: UInt16) -> Float {
        let sign = UInt32(h >> 15) << 31
        let exponent = UInt32((h >> 10) & 0x1F)
        let mantissa = UInt32(h & 0x3FF)
        if exponent == 0 {
            // Zero or subnormal: value = mantissa * 2^-24.
            let magnitude = Float(mantissa) * Float(sign: .plus, exponent: -24, significand: 1)
            return sign == 0 ? magnitude : -magnitude
        }
        if exponent == 0x1F {
            return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
        }
        return Float(bitPattern: sign | ((exponent + 112) << 23) | (mantissa << 13))
    }

    /// Float to half bits, rounding to nearest even (for tests and activation tooling).
    static func floatToHalfBits(_ f: Float) -> UInt16 {
        Float16(f).bitPattern
    }
}
