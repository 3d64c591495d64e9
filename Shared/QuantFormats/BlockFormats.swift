/// Quantized weight formats as the integer kernels read them: 32-value blocks of 16-bit codes
/// with their scales. Compiled for the portable target; every kernel module specialises and
/// inlines these for its own target.

/// A weight block unpacked for the integer kernel: 32 codes as four 8-lane vectors (block order),
/// the scale `d` (of the second 16 codes too, unless the format has `d2`) and, for formats with an
/// offset, `m` (value = d·code + m).
public struct DecodedBlock {
    public var w0: SIMD8<Int16>
    public var w1: SIMD8<Int16>
    public var w2: SIMD8<Int16>
    public var w3: SIMD8<Int16>
    public var d: Float
    public var m: Float
    /// Scale of codes 16–31 when the format scales each 16 values separately (Q6_K).
    public var d2: Float

    @inlinable @inline(__always)
    public init(
        w0: SIMD8<Int16>, w1: SIMD8<Int16>, w2: SIMD8<Int16>, w3: SIMD8<Int16>, d: Float, m: Float, d2: Float = 0
    ) {
        self.w0 = w0
        self.w1 = w1
        self.w2 = w2
        self.w3 = w3
        self.d = d
        self.m = m
        self.d2 = d2
    }
}

/// A quantized format the integer kernel reads as 32-value blocks (K-quant super-blocks of 256
/// are read as eight of them).
/// Half-precision scale bits to float: a table on the portable target (which has no conversion
/// instruction), the hardware instruction where the target has one. Both are exact.
public protocol HalfConversion {
    func float(_ bits: UInt16) -> Float
}

/// Conversion by a 65,536-entry table indexed by the half's bits.
public struct HalfTable: HalfConversion {
    public let table: UnsafePointer<Float>
    @inlinable public init(_ table: UnsafePointer<Float>) { self.table = table }
    @inlinable @inline(__always)
    public func float(_ bits: UInt16) -> Float { table[Int(bits)] }
}

public protocol Int8BlockFormat {
    static var hasOffset: Bool { get }
    static var hasTwoScales: Bool { get }
    /// The `b`-th 32-value block of the row starting at `row`.
    static func decode(_ row: UnsafeRawPointer, _ b: Int, _ half: some HalfConversion) -> DecodedBlock
}

extension DecodedBlock {

    /// Codes from two 16-byte vectors holding values 0–15 and 16–31.
    @inlinable @inline(__always)
    public init<Lane: FixedWidthInteger & SIMDScalar>(
        _ first: SIMD16<Lane>, _ second: SIMD16<Lane>, d: Float, m: Float, d2: Float = 0
    ) {
        self.init(
            w0: SIMD8<Int16>(truncatingIfNeeded: first.lowHalf), w1: SIMD8<Int16>(truncatingIfNeeded: first.highHalf),
            w2: SIMD8<Int16>(truncatingIfNeeded: second.lowHalf), w3: SIMD8<Int16>(truncatingIfNeeded: second.highHalf),
            d: d, m: m, d2: d2)
    }
}

/// Q4_1: d, m (f16), 16 bytes of nibbles; low nibbles are values 0–15, high nibbles 16–31.
public enum Q4_1Format: Int8BlockFormat {
    @inlinable public static var hasOffset: Bool { true }
    @inlinable public static var hasTwoScales: Bool { false }
    @inlinable @inline(__always)
    public static func decode(_ row: UnsafeRawPointer, _ b: Int, _ half: some HalfConversion) -> DecodedBlock {
        let p = row + b * 20
        let raw = p.loadUnaligned(fromByteOffset: 4, as: SIMD16<UInt8>.self)
        return DecodedBlock(
            raw & 0x0F, raw &>> 4, d: half.float(p.loadUnaligned(as: UInt16.self)),
            m: half.float(p.loadUnaligned(fromByteOffset: 2, as: UInt16.self)))
    }
}

/// Q4_0: d (f16), 16 bytes of nibbles holding code + 8.
public enum Q4_0Format: Int8BlockFormat {
    @inlinable public static var hasOffset: Bool { false }
    @inlinable public static var hasTwoScales: Bool { false }
    @inlinable @inline(__always)
    public static func decode(_ row: UnsafeRawPointer, _ b: Int, _ half: some HalfConversion) -> DecodedBlock {
        let p = row + b * 18
        let raw = SIMD16<Int8>(truncatingIfNeeded: p.loadUnaligned(fromByteOffset: 2, as: SIMD16<UInt8>.self))
        let eight = SIMD16<Int8>(repeating: 8)
        return DecodedBlock((raw & 0x0F) &- eight, (raw &>> 4) & 0x0F &- eight, d: half.float(p.loadUnaligned(as: UInt16.self)), m: 0)
    }
}

/// Q8_0: d (f16), 32 signed bytes.
public enum Q8_0Format: Int8BlockFormat {
    @inlinable public static var hasOffset: Bool { false }
    @inlinable public static var hasTwoScales: Bool { false }
    @inlinable @inline(__always)
    public static func decode(_ row: UnsafeRawPointer, _ b: Int, _ half: some HalfConversion) -> DecodedBlock {
        let p = row + b * 34
        return DecodedBlock(
            p.loadUnaligned(fromByteOffset: 2, as: SIMD16<Int8>.self),
            p.loadUnaligned(fromByteOffset: 18, as: SIMD16<Int8>.self), d: half.float(p.loadUnaligned(as: UInt16.self)),
            m: 0)
    }
}

/// Q4_K: a 256-value super-block (144 bytes) is eight 32-value blocks with 6-bit scale and min
/// each: value = (d·scale)·code − dmin·min, i.e. a Q4_1-like block with m = −dmin·min.
public enum Q4_KFormat: Int8BlockFormat {
    /// The 6-bit scale and min of sub-block `j` (0–7) from the 12 packed bytes at `scales`.
    @inlinable @inline(__always)
    public static func scaleMin(_ scales: UnsafeRawPointer, _ j: Int) -> (scale: UInt8, min: UInt8) {
        let q = { (i: Int) in scales.load(fromByteOffset: i, as: UInt8.self) }
        if j < 4 {
            return (q(j) & 63, q(j + 4) & 63)
        }
        return ((q(j + 4) & 0x0F) | ((q(j - 4) >> 6) << 4), (q(j + 4) >> 4) | ((q(j) >> 6) << 4))
    }

    @inlinable public static var hasOffset: Bool { true }
    @inlinable public static var hasTwoScales: Bool { false }
    @inlinable @inline(__always)
    public static func decode(_ row: UnsafeRawPointer, _ b: Int, _ half: some HalfConversion) -> DecodedBlock {
        let p = row + (b >> 3) * 144
        let j = b & 7
        let (scale, minimum) = Q4_KFormat.scaleMin(p + 4, j)
        let bytes = p + 16 + (j >> 1) * 32
        let shift: UInt8 = j & 1 == 0 ? 0 : 4
        let first = (bytes.loadUnaligned(as: SIMD16<UInt8>.self) &>> shift) & 0x0F
        let second = (bytes.loadUnaligned(fromByteOffset: 16, as: SIMD16<UInt8>.self) &>> shift) & 0x0F
        return DecodedBlock(
            first, second, d: half.float(p.loadUnaligned(as: UInt16.self)) * Float(scale),
            m: -(half.float(p.loadUnaligned(fromByteOffset: 2, as: UInt16.self)) * Float(minimum)))
    }
}

/// Q6_K: a 256-value super-block (210 bytes) is eight 32-value blocks whose 16-value halves have
/// their own signed 8-bit scale: value = (d·scale)·(code − 32).
public enum Q6_KFormat: Int8BlockFormat {
    @inlinable public static var hasOffset: Bool { false }
    @inlinable public static var hasTwoScales: Bool { true }
    @inlinable @inline(__always)
    public static func decode(_ row: UnsafeRawPointer, _ b: Int, _ half: some HalfConversion) -> DecodedBlock {
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
        let d = half.float(p.loadUnaligned(fromByteOffset: 208, as: UInt16.self))
        let scales = p + 192 + halfIndex * 8 + 2 * quarter
        return DecodedBlock(
            codes(0), codes(16), d: d * Float(scales.load(as: Int8.self)), m: 0,
            d2: d * Float(scales.load(fromByteOffset: 1, as: Int8.self)))
    }
}
