/// What the wide kernel modules share with their caller: one entry point per format, and the
/// operands each kind of kernel reads. Both wide modules are the same source compiled for
/// different CPUs, so the caller picks a module once and dispatches the same way for either.
public protocol FormatKernels {
    associatedtype Operands
    /// Rows `rows` of a matrix whose rows are `rowBytes` apart from `weights`, `blocks` 32-value
    /// blocks each.
    static func q4_1(_ weights: UnsafeRawPointer, rowBytes: Int, rows: Range<Int>, blocks: Int, _ x: Operands)
    static func q4_0(_ weights: UnsafeRawPointer, rowBytes: Int, rows: Range<Int>, blocks: Int, _ x: Operands)
    static func q8_0(_ weights: UnsafeRawPointer, rowBytes: Int, rows: Range<Int>, blocks: Int, _ x: Operands)
    static func q4_K(_ weights: UnsafeRawPointer, rowBytes: Int, rows: Range<Int>, blocks: Int, _ x: Operands)
}

/// A batch with tokens in vector lanes.
///
/// - pairs: per 16-token tile, per column pair, 16 lanes of two Int16 codes (64 bytes).
/// - scales, sums: `[block][paddedTokens]` floats, `d_x` and `d_x·Σx`, zero past `tokens`.
/// - scratch: room for `rowChunk` rows of decoded blocks, 64-byte aligned.
/// Rows are decoded `rowChunk` at a time; every tile passes over them while they stay in cache.
public struct BatchOperands {
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

/// A few tokens (one or more) and the output rows they write.
///
/// - split: each token's 16-bit codes per block as its 16 even-numbered codes, then its 16 odd
///   ones (`x0, x2, …, x30, x1, x3, …, x31`; 64 bytes a block): the order in which the weights'
///   codes come out of a 256-bit register. Token-major: token `t`'s block `b` at `(t·blocks + b)·64`.
/// - scales, sums: per token, per block (`t·blocks + b`), `d_x` and `d_x·Σx`.
/// - out: row `j` of the matrix writes `out[t·outStride + j]` for token `t`.
public struct SingleTokenOperands {
    public var split: UnsafeRawPointer
    public var scales: UnsafePointer<Float>
    public var sums: UnsafePointer<Float>
    public var out: UnsafeMutablePointer<Float>
    public var tokens: Int
    public var outStride: Int

    public init(
        split: UnsafeRawPointer, scales: UnsafePointer<Float>, sums: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
        tokens: Int = 1, outStride: Int = 0
    ) {
        self.split = split
        self.scales = scales
        self.sums = sums
        self.out = out
        self.tokens = tokens
        self.outStride = outStride
    }
}
