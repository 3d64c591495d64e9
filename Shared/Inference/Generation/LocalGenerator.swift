/// Why a generation ended.
public enum FinishReason: String, Sendable {
    /// An end-of-generation token or a stop string.
    case stop
    /// `maxTokens` were generated.
    case length
}

/// What to generate: prompt ids, limits and sampling.
public struct GenerationRequest: Sendable {
    public var promptTokens: [Int32]
    public var maxTokens: Int
    public var sampling: SamplingParameters
    /// Stop after a token the tokenizer marks as end of generation (`--ignore-eos` clears it).
    public var stopAtEndOfGeneration: Bool
    public var stopStrings: StopStrings
    /// Largest prefill step, in tokens (results do not depend on it).
    public var prefillChunkTokens: Int

    public init(
        promptTokens: [Int32], maxTokens: Int, sampling: SamplingParameters = .greedy,
        stopAtEndOfGeneration: Bool = true, stopStrings: [String] = [], prefillChunkTokens: Int = 512
    ) {
        self.promptTokens = promptTokens
        self.maxTokens = maxTokens
        self.sampling = sampling
        self.stopAtEndOfGeneration = stopAtEndOfGeneration
        self.stopStrings = StopStrings(stopStrings)
        self.prefillChunkTokens = max(1, prefillChunkTokens)
    }
}

/// Progress reported while generating, so a caller can stream text and take timings.
public enum GenerationEvent: Sendable {
    /// The prompt has been processed; the first token is about to be sampled.
    case prefilled
    /// A token was generated; `text` is the text it completes (stop strings withheld).
    case token(Int32, text: String)
    /// Text withheld while it could have begun a stop string, released at the end.
    case trailingText(String)
}

/// The result of a generation.
public struct GenerationResult: Sendable {
    public let tokens: [Int32]
    public let text: String
    public let finishReason: FinishReason
}

/// Generates text in one process with the whole model: the reference for what a pipeline of
/// stages must produce token for token (same executor code, same sampler).
public struct LocalGenerator {
    public let executor: BlockRangeExecutor
    public let tokenizer: Tokenizer

    public init(executor: BlockRangeExecutor, tokenizer: Tokenizer) {
        self.executor = executor
        self.tokenizer = tokenizer
    }

    public func generate(
        _ request: GenerationRequest, cache: KVCacheID = KVCacheID(key: "local", attempt: 0),
        onEvent: (GenerationEvent) -> Void = { _ in }
    ) throws -> GenerationResult {
        guard executor.takesTokens, executor.producesLogits else {
            throw InferenceError.badInput("local generation needs an executor holding the whole model")
        }
        guard !request.promptTokens.isEmpty else { throw InferenceError.badInput("the prompt has no tokens") }
        defer { executor.release(cache) }

        var logits: StepOutput?
        var position = 0
        while position < request.promptTokens.count {
            let end = min(position + request.prefillChunkTokens, request.promptTokens.count)
            logits = try executor.run(
                Step(cache: cache, startPosition: position, input: .tokens(Array(request.promptTokens[position..<end]))))
            position = end
        }
        onEvent(.prefilled)

        var tokens: [Int32] = []
        var detokenizer = StreamingDetokenizer(tokenizer: tokenizer)
        var text = ""
        var streamedCount = 0
        var finish = FinishReason.length
        while tokens.count < request.maxTokens, let current = logits {
            let sampled = Sampler.sample(current.row(0), parameters: request.sampling, position: position)
            tokens.append(sampled.token)
            if request.stopAtEndOfGeneration, tokenizer.isEndOfGeneration(sampled.token) {
                finish = .stop
                break
            }
            text += detokenizer.append(sampled.token)
            if let stop = request.stopStrings.firstMatch(in: text) {
                text = String(text[..<stop])
                finish = .stop
                break
            }
            let ready = text.count - request.stopStrings.pendingSuffixLength(of: text)
            onEvent(.token(sampled.token, text: String(text.dropFirst(streamedCount).prefix(ready - streamedCount))))
            streamedCount = max(streamedCount, ready)
            if tokens.count == request.maxTokens { break }
            logits = try executor.run(Step(cache: cache, startPosition: position, input: .tokens([sampled.token])))
            position += 1
        }
        if finish == .length {
            text += detokenizer.finish()
        }
        if text.count > streamedCount {
            onEvent(.trailingText(String(text.dropFirst(streamedCount))))
        }
        return GenerationResult(tokens: tokens, text: text, finishReason: finish)
    }
}
