/// A tensor element type of the GGML family, with its block geometry.
///
/// Quantized types store fixed-size blocks of `blockElements` values in `blockBytes` bytes; a
/// tensor row is always a whole number of blocks. Only some types have kernels here
/// (`isComputable`); the others are still described so a file using them can be listed and rejected
/// with a clear message rather than misread.
public enum GGMLType: UInt32, Sendable, CaseIterable, CustomStringConvertible {
    case f32 = 0
    case f16 = 1
    case q4_0 = 2
    case q4_1 = 3
    case q5_0 = 6
    case q5_1 = 7
    case q8_0 = 8
    case q8_1 = 9
    case q2_K = 10
    case q3_K = 11
    case q4_K = 12
    case q5_K = 13
    case q6_K = 14
    case q8_K = 15
    case i8 = 24
    case i16 = 25
    case i32 = 26
    case i64 = 27
    case f64 = 28
    case bf16 = 30

    /// Values per block (1 for plain types).
    public var blockElements: Int {
        switch self {
        case .f32, .f16, .bf16, .i8, .i16, .i32, .i64, .f64: return 1
        case .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q8_1: return 32
        case .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .q8_K: return 256
        }
    }

    /// Bytes per block.
    public var blockBytes: Int {
        switch self {
        case .f32, .i32: return 4
        case .f16, .bf16, .i16: return 2
        case .i8: return 1
        case .i64, .f64: return 8
        case .q4_0: return 18
        case .q4_1: return 20
        case .q5_0: return 22
        case .q5_1: return 24
        case .q8_0: return 34
        case .q8_1: return 36
        case .q2_K: return 84
        case .q3_K: return 110
        case .q4_K: return 144
        case .q5_K: return 176
        case .q6_K: return 210
        case .q8_K: return 292
        }
    }

    /// Whether this module can dequantise and multiply tensors of this type.
    public var isComputable: Bool {
        switch self {
        case .f32, .f16, .q4_0, .q4_1, .q8_0, .q4_K, .q6_K: return true
        default: return false
        }
    }

    /// Bytes needed for `elements` values, or nil when `elements` is not a whole number of blocks.
    public func byteCount(elements: Int) -> Int? {
        guard elements >= 0, elements % blockElements == 0 else { return nil }
        let (bytes, overflow) = (elements / blockElements).multipliedReportingOverflow(by: blockBytes)
        return overflow ? nil : bytes
    }

    /// The lower-case name llama.cpp uses (`q4_1`, `f16`…).
    public var description: String {
        switch self {
        case .f32: return "f32"
        case .f16: return "f16"
        case .q4_0: return "q4_0"
        case .q4_1: return "q4_1"
        case .q5_0: return "q5_0"
        case .q5_1: return "q5_1"
        case .q8_0: return "q8_0"
        case .q8_1: return "q8_1"
        case .q2_K: return "q2_K"
        case .q3_K: return "q3_K"
        case .q4_K: return "q4_K"
        case .q5_K: return "q5_K"
        case .q6_K: return "q6_K"
        case .q8_K: return "q8_K"
        case .i8: return "i8"
        case .i16: return "i16"
        case .i32: return "i32"
        case .i64: return "i64"
        case .f64: return "f64"
        case .bf16: return "bf16"
        }
    }
}

/// One entry of a GGUF file's tensor table.
///
/// `shape` is in GGML order: `shape[0]` is the length of a row (the contiguous dimension), so a
/// weight matrix `[in, out]` has `out` rows of `in` values each.
public struct GGUFTensorInfo: Sendable, Hashable {
    public let name: String
    public let shape: [Int]
    public let type: GGMLType
    /// Offset of the first byte from the start of the file's data section.
    public let offset: Int
    /// Total bytes of the tensor's data.
    public let byteCount: Int

    public var elementCount: Int { shape.reduce(1, *) }
    /// Values per row (`shape[0]`).
    public var rowLength: Int { shape.first ?? 1 }
    /// Number of rows (product of every dimension after the first).
    public var rowCount: Int { shape.dropFirst().reduce(1, *) }
    /// Bytes per row (a whole number of blocks).
    public var rowBytes: Int { rowLength / type.blockElements * type.blockBytes }
}
