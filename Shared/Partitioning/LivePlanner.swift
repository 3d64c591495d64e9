import Profiles

/// The planner service's pure core (docs/design.md §9): plans once the service starts, folds live
/// nodes into the topology as their heartbeats arrive, and decides — through a `ReplanController`
/// — when measured compute speeds or membership make other cuts better by a margin that lasts,
/// and when a switch that made things worse is rolled back. Every decision comes with the reason
/// to log.
///
/// No clock, broker or file: the service passes heartbeats, monotonic seconds and wall-clock
/// milliseconds in, and publishes what `evaluate` returns.
public struct LivePlanner: Sendable {
    /// How the planner decides; the service fills it from its flags.
    public struct Configuration: Sendable, Hashable {
        public var policy: PartitionPolicy
        public var replan: ReplanController.Policy
        /// How long a node may stay silent before it is out (3 heartbeat intervals).
        public var silenceSeconds: Double
        /// BSDP gives every tier blocks (the paper's formulation) instead of leaving out a tier
        /// that does not pay for itself, or that has no live node.
        public var requireEveryTier: Bool

        public init(
            policy: PartitionPolicy, replan: ReplanController.Policy = .init(), silenceSeconds: Double = 3,
            requireEveryTier: Bool = false
        ) {
            self.policy = policy
            self.replan = replan
            self.silenceSeconds = silenceSeconds
            self.requireEveryTier = requireEveryTier
        }
    }

    /// The plan in force: what the service has published.
    public struct CurrentPlan: Sendable, Hashable {
        /// Monotonic across planner restarts: epoch milliseconds at creation, or more.
        public var version: Int64
        public var partition: Partition
    }

    /// What to do after an evaluation.
    public enum Directive: Sendable, Hashable {
        /// Publish this new plan; `reason` says why it replaces the previous one.
        case publish(CurrentPlan, reason: String)
        /// Keep the current plan (or none, while nothing fits). `notable` marks a reason worth an
        /// info-level log line: a gain starting or ending, a switch checked, or a new reason for having no plan.
        case keep(reason: String, notable: Bool)
    }

    public let model: ModelProfile
    /// The topology file: tiers, links and the nodes expected before any is heard from.
    public let baseTopology: Topology
    public let workload: Workload
    public let configuration: Configuration
    public private(set) var membership: LiveMembership
    public private(set) var current: CurrentPlan?
    /// The plan the current one replaced (what a rollback goes back to).
    public private(set) var previous: CurrentPlan?
    /// Why there is no plan yet, when planning was tried and nothing fits.
    public private(set) var infeasibility: Infeasibility?
    private var controller: ReplanController?
    private var highestVersionSeen: Int64 = 0
    private var lastKeepReason: String?

    public init(model: ModelProfile, topology: Topology, workload: Workload, configuration: Configuration) {
        self.model = model
        self.baseTopology = topology
        self.workload = workload
        self.configuration = configuration
        self.membership = LiveMembership(silenceSeconds: configuration.silenceSeconds)
    }

    /// The topology as the live nodes describe it now.
    public var liveTopology: Topology { membership.fold(into: baseTopology) }

    /// The plan in force scored on the live figures: what this cluster is predicted to give
    /// per request now that its nodes' speeds are measured (nil: no plan, or it no longer fits).
    public var liveBottleneckSeconds: Double? {
        guard let current else { return nil }
        return Planner.reevaluate(current.partition, model: model, topology: liveTopology, workload: workload).partition?.bottleneckSeconds
    }

    /// Whether a better plan is being watched through its dwell time (for heartbeats and logs).
    public var isDrifting: Bool { controller?.gainSince != nil }

    /// Records a worker heartbeat; returns the membership change it makes, if any.
    @discardableResult
    public mutating func record(_ heartbeat: LiveMembership.Heartbeat, at now: Double) -> LiveMembership.Change? {
        membership.record(heartbeat, at: now)
    }

    /// Notes a plan version seen elsewhere (on the broker), so the next plan outnumbers it.
    public mutating func noteVersionSeen(_ version: Int64) {
        highestVersionSeen = max(highestVersionSeen, version)
    }

    /// The version a plan created at `wallMilliseconds` gets: the epoch milliseconds, but never
    /// lower than one past any version published or seen, so versions grow across restarts even
    /// when clocks disagree.
    public func nextVersion(wallMilliseconds: Int64) -> Int64 {
        let floor = max(highestVersionSeen, current?.version ?? 0, membership.highestPlanVersion ?? 0)
        return max(wallMilliseconds, floor == Int64.max ? floor : floor + 1)
    }

    /// Drops silent nodes, re-plans on the live topology and decides whether to publish.
    /// `now` is monotonic seconds (for silence, dwell and check periods), `wallMilliseconds` stamps a
    /// new plan's version.
    public mutating func evaluate(at now: Double, wallMilliseconds: Int64) -> (changes: [LiveMembership.Change], directive: Directive) {
        let changes = membership.expire(at: now)
        let live = liveTopology
        let fresh = Planner.plan(
            model: model, topology: live, workload: workload, policy: configuration.policy,
            requireEveryTier: configuration.requireEveryTier)

        guard let current else {
            switch fresh {
            case .plan(let partition):
                infeasibility = nil
                let reason = lastKeepReason == nil ? "first plan" : "first plan that fits the live nodes"
                return (changes, publish(partition, reason: reason, at: now, wallMilliseconds: wallMilliseconds))
            case .infeasible(let reason):
                infeasibility = reason
                return (changes, keep("no \(configuration.policy.rawValue) partition fits: \(reason.reason)"))
            }
        }

        let rescored = Planner.reevaluate(current.partition, model: model, topology: live, workload: workload)
        var controller = self.controller ?? ReplanController(policy: configuration.replan, publishedAt: now)
        // Both plans are scored on the same live figures: a change that slows every node alike
        // (load, another process) moves both and moves no cut.
        let inForce = rescored.partition.map { ReplanController.Option(cuts: Self.cuts(of: $0), bottleneckSeconds: $0.bottleneckSeconds) }
        let candidate = fresh.partition.map { ReplanController.Option(cuts: Self.cuts(of: $0), bottleneckSeconds: $0.bottleneckSeconds) }
        let replaced = previous.flatMap { Planner.reevaluate($0.partition, model: model, topology: live, workload: workload).partition }
            .map { ReplanController.Option(cuts: Self.cuts(of: $0), bottleneckSeconds: $0.bottleneckSeconds) }
        let decision = controller.observe(current: inForce, candidate: candidate, replaced: replaced, at: now)
        self.controller = controller

        switch decision {
        case .keep(let reason, let notable):
            return (changes, keep(reason, notable: notable))
        case .switchTo(let reason):
            guard let partition = fresh.partition else {
                let why = fresh.infeasibility?.reason ?? "no partition"
                return (changes, keep("\(reason), but no partition fits the live nodes (\(why)); keeping version \(current.version)"))
            }
            return (changes, publish(partition, reason: "\(reason); cuts moved", replacing: inForce, at: now, wallMilliseconds: wallMilliseconds))
        case .rollBack(_, let reason):
            guard let previous, let back = Planner.reevaluate(previous.partition, model: model, topology: live, workload: workload).partition else {
                return (changes, keep("\(reason), but the replaced plan no longer fits the live nodes; keeping version \(current.version)"))
            }
            return (changes, publish(back, reason: reason, replacing: inForce, rollback: true, at: now, wallMilliseconds: wallMilliseconds))
        }
    }

    /// Tier and first block of every stage: what makes two plans' cuts the same.
    static func cuts(of partition: Partition) -> String {
        partition.stages.map { "\($0.tierName):\($0.firstBlock)" }.joined(separator: ",")
    }

    private mutating func publish(
        _ partition: Partition, reason: String, replacing replaced: ReplanController.Option? = nil, rollback: Bool = false,
        at now: Double, wallMilliseconds: Int64
    ) -> Directive {
        let plan = CurrentPlan(version: nextVersion(wallMilliseconds: wallMilliseconds), partition: partition)
        previous = current
        current = plan
        highestVersionSeen = max(highestVersionSeen, plan.version)
        if controller == nil {
            controller = ReplanController(policy: configuration.replan, publishedAt: now)
        } else {
            controller?.published(replacing: replaced, predictedSeconds: partition.bottleneckSeconds, rollback: rollback, at: now)
        }
        lastKeepReason = nil
        return .publish(plan, reason: reason)
    }

    /// A keep decision; notable when forced or when the reason differs from the last one logged
    /// as notable under the same circumstances (no plan, or a re-plan that cannot happen).
    private mutating func keep(_ reason: String, notable forced: Bool? = nil) -> Directive {
        if let forced { return .keep(reason: reason, notable: forced) }
        let notable = reason != lastKeepReason
        lastKeepReason = reason
        return .keep(reason: reason, notable: notable)
    }
}
