import Profiles

/// The requests of one load point, drawn as the simulator draws them: the same seed gives the same
/// arrival gaps, bursts and lengths, so `hyperion bench load` against a running system and
/// `hyperion simulate` put the same traffic on their systems.
public struct LoadTraffic: Sendable {
    private var arrivalRandom: SimulationRandom
    private var lengthRandom: SimulationRandom
    public let arrival: Scenario.ArrivalProcess
    public let workload: ScenarioWorkload

    public init(seed: UInt64, arrival: Scenario.ArrivalProcess, workload: ScenarioWorkload) {
        arrivalRandom = SimulationRandom(seed: seed, stream: 1)
        lengthRandom = SimulationRandom(seed: seed, stream: 2)
        self.arrival = arrival
        self.workload = workload
    }

    /// Requests arriving together now (1 for Poisson, a geometric burst for bursty) and the
    /// seconds until the next arrival, at a mean of `ratePerSecond` requests per second.
    public mutating func nextArrival(ratePerSecond: Double) -> (requests: Int, gapSeconds: Double) {
        var burst = 1
        var meanGap = 1 / ratePerSecond
        if case .bursty(let size) = arrival {
            burst = arrivalRandom.geometric(mean: size)
            meanGap = size / ratePerSecond
        }
        return (burst, arrivalRandom.exponential(mean: meanGap))
    }

    /// The next request's prompt and output lengths in tokens (each ≥ 1).
    public mutating func nextLengths() -> (promptTokens: Int, outputTokens: Int) {
        let (prompt, output): (Int, Int)
        switch workload.distribution {
        case .fixed: (prompt, output) = (workload.promptTokens, workload.outputTokens)
        case .uniform:
            (prompt, output) = (lengthRandom.uniformAround(mean: workload.promptTokens), lengthRandom.uniformAround(mean: workload.outputTokens))
        case .exponential:
            (prompt, output) = (
                lengthRandom.geometric(mean: Double(workload.promptTokens)), lengthRandom.geometric(mean: Double(workload.outputTokens))
            )
        }
        return (max(prompt, 1), max(output, 1))
    }
}
