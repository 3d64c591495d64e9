/// A node's compute speed as the planner trusts it: predicted roofline seconds of the batches it
/// ran (which count their tokens, their blocks and the batch size) over the compute seconds they
/// took — the compute thread's own time, not waits, batching slack or time another process held
/// the core — smoothed over minutes, with a confidence.
///
/// Both sums decay with time constant `smoothingSeconds`, so the estimate follows a sustained
/// change of the device within a few minutes while the swings of load (which batches run, which
/// cut the node holds this minute) average out. `confidence` grows with the compute seconds still
/// weighing in the sums: an estimate from a second of work counts for little.
///
/// Pure: the caller passes monotonic seconds.
public struct ComputeSpeedMeter: Sendable, Hashable {
    public var smoothingSeconds: Double
    /// Decayed compute seconds at which the estimate is fully trusted.
    public var fullConfidenceSeconds: Double
    private var predicted = 0.0
    private var compute = 0.0
    private var at: Double?

    public init(smoothingSeconds: Double = 120, fullConfidenceSeconds: Double = 4) {
        self.smoothingSeconds = max(1, smoothingSeconds)
        self.fullConfidenceSeconds = max(1e-9, fullConfidenceSeconds)
    }

    /// Adds the batches of one interval (or one batch) ending at `now`.
    public mutating func record(predictedSeconds: Double, computeSeconds: Double, at now: Double) {
        decay(to: now)
        guard predictedSeconds > 0, computeSeconds > 0, predictedSeconds.isFinite, computeSeconds.isFinite else { return }
        predicted += predictedSeconds
        compute += computeSeconds
    }

    /// Lets time pass without work: the old figures weigh less, the estimate stays.
    public mutating func decay(to now: Double) {
        if let at, now > at {
            let factor = Self.exp(-(now - at) / smoothingSeconds)
            predicted *= factor
            compute *= factor
        }
        at = max(at ?? now, now)
    }

    /// Predicted over compute seconds (1 until measured).
    public var speed: Double { compute > 0 ? predicted / compute : 1 }
    /// 0 (nothing measured) … 1 (`fullConfidenceSeconds` of compute in the smoothed window).
    public var confidence: Double { min(1, compute / fullConfidenceSeconds) }

    private static func exp(_ x: Double) -> Double {
        // e^x by squaring a short series: enough for decay factors, without Foundation.
        var n = 0
        var y = x
        while abs(y) > 0.5 {
            y /= 2
            n += 1
        }
        var term = 1.0
        var sum = 1.0
        for k in 1...12 {
            term *= y / Double(k)
            sum += term
        }
        for _ in 0..<n { sum *= sum }
        return sum
    }
}
