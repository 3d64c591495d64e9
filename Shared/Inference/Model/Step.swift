/// One request's share of a computation on a block range: a prefill chunk or one decode token.
public struct Step: Sendable {
    /// What enters the range: token ids for the range holding the embedding, else the previous
    /// range's activations (`tokens × hiddenSize` floats, row-major).
    public enum Input: Sendable {
        case tokens([Int32])
        case activations([Float])
    }

    public var cache: KVCacheID
    /// Position of the step's first token in its sequence.
    public var startPosition: Int
    public var input: Input

    public init(cache: KVCacheID, startPosition: Int, input: Input) {
        self.cache = cache
        self.startPosition = startPosition
        self.input = input
    }
}

/// What a block range produces for one step.
public struct StepOutput: Sendable {
    public enum Kind: String, Sendable {
        /// `rows × hiddenSize` floats for the next range.
        case activations
        /// `rows × vocabularySize` logits (the range ends the model).
        case logits
    }

    public let kind: Kind
    public let rows: Int
    public let width: Int
    public let values: [Float]

    /// Row `r` of the output.
    public func row(_ r: Int) -> ArraySlice<Float> { values[(r * width)..<((r + 1) * width)] }
}

/// Which tokens of a step the last range computes logits for.
public enum LogitRows: Sendable {
    /// Only the step's last token (what sampling needs).
    case lastToken
    /// Every token of the step (for teacher-forced evaluation).
    case everyToken
}

/// How an executor computes.
public struct ExecutionOptions: Sendable {
    /// Threads for one computation (results do not depend on it).
    public var threads: Int
    public var precision: ActivationPrecision
    /// Refuse steps (`kv_full`) that would make the held KV bytes exceed this.
    public var kvBudgetBytes: Int?
    /// Kernels for the integer products (results do not depend on it); a set the CPU cannot run
    /// falls back to the widest narrower one it can.
    public var kernels: KernelSet

    public init(
        threads: Int = 1, precision: ActivationPrecision = .int8, kvBudgetBytes: Int? = nil, kernels: KernelSet = .best
    ) {
        self.threads = threads
        self.precision = precision
        self.kvBudgetBytes = kvBudgetBytes
        self.kernels = kernels.runnable
    }
}
