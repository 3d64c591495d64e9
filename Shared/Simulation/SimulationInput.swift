import Partitioning
import Profiles
import Scheduling

/// How much traffic a load point offers.
public enum LoadPoint: Sendable, Hashable, CustomStringConvertible {
    /// Open loop: requests arrive at this mean rate (requests per second) whatever happens.
    case rate(Double)
    /// Closed loop: this many clients, each sending its next request when the last one ends.
    case concurrency(Int)

    public var description: String {
        switch self {
        case .rate(let rate): "\((rate * 1000).rounded() / 1000) req/s"
        case .concurrency(let clients): "concurrency \(clients)"
        }
    }
}

/// Everything one simulated run needs: a planned system on a topology, and the traffic.
public struct SimulationInput: Sendable {
    public var topology: Topology
    public var partition: Partition
    /// Step costs of each stage of `partition`, in pipeline order.
    public var stageCosts: [StageStepCost]
    public var routing: RoutingPolicy
    public var workload: ScenarioWorkload
    public var load: LoadPoint
    public var arrival: Scenario.ArrivalProcess
    /// Requests issued in the run.
    public var requests: Int
    public var seed: UInt64
    public var drift: [Scenario.DriftEvent]
    public var heartbeatSeconds: Double
    public var batching: Scenario.Batching
    public var deadlineSeconds: Double
    /// Attempts per request before it fails (a refused prefill starts a new attempt).
    public var maxAttempts: Int

    public init(
        topology: Topology, partition: Partition, stageCosts: [StageStepCost], routing: RoutingPolicy,
        workload: ScenarioWorkload, load: LoadPoint, arrival: Scenario.ArrivalProcess = .poisson, requests: Int,
        seed: UInt64, drift: [Scenario.DriftEvent] = [], heartbeatSeconds: Double = 1,
        batching: Scenario.Batching = Scenario.Batching(), deadlineSeconds: Double = 600, maxAttempts: Int = 4
    ) {
        self.topology = topology
        self.partition = partition
        self.stageCosts = stageCosts
        self.routing = routing
        self.workload = workload
        self.load = load
        self.arrival = arrival
        self.requests = requests
        self.seed = seed
        self.drift = drift
        self.heartbeatSeconds = heartbeatSeconds
        self.batching = batching
        self.deadlineSeconds = deadlineSeconds
        self.maxAttempts = maxAttempts
    }
}
