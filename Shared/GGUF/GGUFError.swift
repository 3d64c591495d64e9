/// Why a GGUF file could not be read or used, naming the part of the file that is wrong.
public struct GGUFError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What was being read when the problem was found, e.g. `metadata["llama.block_count"]` or
    /// `tensor "blk.0.attn_q.weight"`; empty for the file as a whole.
    public let context: String
    /// The problem, e.g. `truncated: needs 8 bytes at offset 1234, file has 1238`.
    public let reason: String

    public init(context: String, reason: String) {
        self.context = context
        self.reason = reason
    }

    public var description: String { context.isEmpty ? reason : "\(context): \(reason)" }
}
