/// One pass of a request through one stage: a prefill chunk or one decode token (docs/design.md §4).
///
/// The body is binary: token ids (`i32`) into the first stage, little-endian `f32` activations
/// between stages. `f32` because activations reach ~23,000, where `f16` would break the
/// bit-identical guarantee between pipelined and single-process generation.
public struct StepHeader: Sendable, Equatable {
    public enum Kind: String, Sendable {
        case prefill, decode
    }

    public enum DType: String, Sendable {
        case i32, f32
    }

    /// The scheduler's id for this ownership of the request.
    public var key: String
    public var attempt: Int
    /// The owning scheduler's events queue.
    public var scheduler: String
    public var planVersion: Int64
    /// Node queue names, one per stage, in order.
    public var route: [String]
    /// Index into `route` of the node this step is addressed to.
    public var stage: Int
    public var kind: Kind
    /// Position of the step's first token.
    public var position: Int
    public var tokenCount: Int
    public var dtype: DType
    /// `[tokens]` for token ids, `[tokens, hidden]` for activations.
    public var shape: [Int]
    /// One entry per stage already passed.
    public var timings: [StageTiming]
    public var sampling: SamplingParameters
    /// Context positions the attempt may reach (prompt + emitted + remaining output): each node
    /// reserves KV for them at the attempt's first step, so an admitted request never runs out
    /// mid-generation (docs/design.md §7). Nil (an older sender): nodes reserve as positions arrive.
    public var reserveTokens: Int?

    public init(
        key: String, attempt: Int, scheduler: String, planVersion: Int64, route: [String], stage: Int, kind: Kind,
        position: Int, tokenCount: Int, dtype: DType, shape: [Int], timings: [StageTiming],
        sampling: SamplingParameters, reserveTokens: Int? = nil
    ) {
        self.key = key
        self.attempt = attempt
        self.scheduler = scheduler
        self.planVersion = planVersion
        self.route = route
        self.stage = stage
        self.kind = kind
        self.position = position
        self.tokenCount = tokenCount
        self.dtype = dtype
        self.shape = shape
        self.timings = timings
        self.sampling = sampling
        self.reserveTokens = reserveTokens
    }

    /// The body size these headers promise; `Int.max` when the shape's product overflows (no
    /// body can match it, so a hostile shape is refused instead of trapping).
    public var expectedBodyBytes: Int {
        var bytes = 4
        for dimension in shape {
            let (product, overflow) = bytes.multipliedReportingOverflow(by: dimension)
            if overflow { return Int.max }
            bytes = product
        }
        return bytes
    }

    /// Checks the headers against themselves and the body's length, naming the first mismatch.
    public func validate(bodyBytes: Int) throws(MessageError) {
        func fail(_ field: String, _ reason: String) -> MessageError { MessageError(field: field, reason: reason) }
        if key.isEmpty { throw fail(Names.Header.key, "must not be empty") }
        if attempt < 1 { throw fail(Names.Header.attempt, "expected an integer >= 1") }
        if route.isEmpty { throw fail(Names.Header.route, "expected at least one node queue") }
        if !route.indices.contains(stage) { throw fail(Names.Header.stage, "\(stage) is outside the route of \(route.count) stages") }
        if position < 0 { throw fail(Names.Header.position, "expected an integer >= 0") }
        if tokenCount < 1 { throw fail(Names.Header.tokenCount, "expected an integer >= 1") }
        if let reserveTokens, reserveTokens < 0 { throw fail(Names.Header.reserveTokens, "expected an integer >= 0") }
        if kind == .decode && tokenCount != 1 { throw fail(Names.Header.tokenCount, "a decode step carries exactly 1 token") }
        switch dtype {
        case .i32:
            if shape != [tokenCount] { throw fail(Names.Header.shape, "expected [\(tokenCount)] for i32 token ids, found \(shape)") }
        case .f32:
            guard shape.count == 2, shape[0] == tokenCount, shape[1] > 0 else {
                throw fail(Names.Header.shape, "expected [\(tokenCount), hidden] for f32 activations, found \(shape)")
            }
        }
        if timings.count != stage { throw fail(Names.Header.timings, "expected \(stage) entries before stage \(stage), found \(timings.count)") }
        if bodyBytes != expectedBodyBytes {
            throw fail("body", "expected \(expectedBodyBytes) bytes for shape \(shape) of \(dtype.rawValue), found \(bodyBytes)")
        }
        try sampling.validate()
    }
}

/// How the last stage picks a token; carried by every step so any stage could sample.
public struct SamplingParameters: Sendable, Equatable {
    /// 0 means greedy.
    public var temperature: Double
    /// 1 means no nucleus cut.
    public var topP: Double
    /// 0 means no limit.
    public var topK: Int
    public var seed: UInt64

    public init(temperature: Double = 0, topP: Double = 1, topK: Int = 0, seed: UInt64 = 0) {
        self.temperature = temperature
        self.topP = topP
        self.topK = topK
        self.seed = seed
    }

    public func validate() throws(MessageError) {
        if !(temperature >= 0 && temperature.isFinite) { throw MessageError(field: Names.Header.temperature, reason: "expected a number >= 0") }
        if !(topP > 0 && topP <= 1) { throw MessageError(field: Names.Header.topP, reason: "expected a number in (0, 1]") }
        if topK < 0 { throw MessageError(field: Names.Header.topK, reason: "expected an integer >= 0") }
    }
}

/// Little-endian encodings of step bodies.
public enum StepBody {
    public static func encode(tokens: [Int32]) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(tokens.count * 4)
        for token in tokens { withUnsafeBytes(of: token.littleEndian) { bytes.append(contentsOf: $0) } }
        return bytes
    }

    public static func decodeTokens(_ bytes: [UInt8]) -> [Int32] {
        let count = bytes.count / 4
        return bytes.withUnsafeBytes { raw in
            (0..<count).map { i in Int32(littleEndian: raw.loadUnaligned(fromByteOffset: i * 4, as: Int32.self)) }
        }
    }

    public static func encode(activations: [Float]) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: activations.count * 4)
        bytes.withUnsafeMutableBytes { raw in
            for (i, value) in activations.enumerated() {
                raw.storeBytes(of: value.bitPattern.littleEndian, toByteOffset: i * 4, as: UInt32.self)
            }
        }
        return bytes
    }

    public static func decodeActivations(_ bytes: [UInt8]) -> [Float] {
        let count = bytes.count / 4
        return bytes.withUnsafeBytes { raw in
            (0..<count).map { i in Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self))) }
        }
    }
}
