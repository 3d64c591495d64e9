/// Turns generated token ids into text as they arrive, never splitting a UTF-8 character: each
/// call returns the text the token completes ("" while a character is still incomplete).
///
/// The scheduler core takes a factory of these so it stays independent of the tokenizer.
public protocol TokenTextStream: Sendable {
    mutating func append(_ token: Int32) -> String
}

/// What the scheduler core needs from the model's vocabulary.
public struct Vocabulary: Sendable {
    /// A fresh text stream for one generation.
    public var makeTextStream: @Sendable () -> any TokenTextStream
    /// Whether a token ends generation (EOS, end-of-turn).
    public var isEndOfGeneration: @Sendable (Int32) -> Bool

    public init(
        makeTextStream: @escaping @Sendable () -> any TokenTextStream,
        isEndOfGeneration: @escaping @Sendable (Int32) -> Bool
    ) {
        self.makeTextStream = makeTextStream
        self.isEndOfGeneration = isEndOfGeneration
    }
}
