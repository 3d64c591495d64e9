import Measurement
/// What one simulated run measured, in the units `hyperion bench load` reports.
public struct SimulationResult: Sendable, Hashable {
    public var completed: Int
    /// Requests that ended without their tokens (no route before the deadline, or out of attempts).
    public var failed: Int
    public var meanLatencySeconds: Double
    public var p50LatencySeconds: Double
    public var p95LatencySeconds: Double
    public var p99LatencySeconds: Double
    public var meanTTFTSeconds: Double
    public var p95TTFTSeconds: Double
    /// Latency at every percentile 0, 1, …, 100 of completed requests (nearest rank; 0 = the
    /// fastest): the latency distribution a report draws as a CDF. Empty when none completed.
    public var latencyPercentilesSeconds: [Double]
    /// Generated tokens of completed requests over the run's span (first arrival to last end).
    public var tokensPerSecond: Double
    /// Completed requests over the run's span.
    public var requestsPerSecond: Double
    /// Requests per second in the middle 80% of the run (tokens generated there over tokens per
    /// request): the steady rate, without the ramp-up and drain at the ends of a closed loop.
    public var steadyRequestsPerSecond: Double
    /// Busy fraction per tier (all of its nodes, including those the plan leaves idle), in
    /// topology order.
    public var tierUtilization: [Share]
    public var nodeUtilization: [Share]
    /// Busy fraction of each inter-tier link, named `from->to`.
    public var linkUtilization: [Share]
    /// Per stage: node-busy seconds per completed request (the measured counterpart of the plan's
    /// `compute_s` summed over the tier's nodes).
    public var stageBusySecondsPerRequest: [Double]
    /// Mean steps per batch over all nodes.
    public var meanBatchSteps: Double
    /// Attempts beyond the first (refused prefills that failed over).
    public var failovers: Int
    public var simulatedSeconds: Double
    public var events: Int
}

/// A named busy fraction (a tier, node or link).
public struct Share: Sendable, Hashable {
    public var name: String
    /// 0…1 of the run's span.
    public var fraction: Double

    public init(name: String, fraction: Double) {
        self.name = name
        self.fraction = fraction
    }
}

