/// Decides when live figures justify a new plan (docs/design.md §9): the bottleneck predicted from
/// measured speeds and current membership must differ from the published plan's by more than a
/// threshold, continuously for a sustain period, before the planner re-plans. Hysteresis keeps a
/// drift hovering at the threshold from flapping, and a cool-down spaces re-plans out.
///
/// Pure: the caller passes timestamps (seconds on any monotonic clock) and logs the reasons.
public struct ReplanMonitor: Sendable {
    public struct Policy: Sendable, Hashable {
        /// Relative change that starts a drift (0.15 = 15%).
        public var enterFraction: Double
        /// Relative change below which a drift is over; lower than `enterFraction` (hysteresis).
        public var exitFraction: Double
        /// How long a drift must last before it triggers a re-plan.
        public var sustainSeconds: Double
        /// Least time between two re-plans triggered by drift.
        public var cooldownSeconds: Double

        public init(enterFraction: Double = 0.15, exitFraction: Double = 0.10, sustainSeconds: Double = 10,
            cooldownSeconds: Double = 30)
        {
            self.enterFraction = enterFraction
            self.exitFraction = min(exitFraction, enterFraction)
            self.sustainSeconds = sustainSeconds
            self.cooldownSeconds = cooldownSeconds
        }
    }

    /// What to do after an observation, with the reason to log.
    public enum Decision: Sendable, Hashable {
        case keep(reason: String)
        case replan(reason: String)

        public var shouldReplan: Bool {
            if case .replan = self { return true }
            return false
        }
    }

    public var policy: Policy
    /// The bottleneck the published plan predicted.
    public private(set) var referenceBottleneckSeconds: Double
    /// When the current drift began, if one is in progress.
    public private(set) var driftSince: Double?
    private var lastReplanAt: Double?

    public init(policy: Policy = Policy(), referenceBottleneckSeconds: Double, publishedAt seconds: Double? = nil) {
        self.policy = policy
        self.referenceBottleneckSeconds = referenceBottleneckSeconds
        self.lastReplanAt = seconds
    }

    /// Feeds one observation: `liveBottleneckSeconds` is the bottleneck planned from live figures
    /// (nil when no partition fits them). `currentPlanServeable` is false when a stage of the
    /// published plan has no live node with room: that re-plans at once, as waiting cannot help.
    public mutating func observe(
        liveBottleneckSeconds: Double?, currentPlanServeable: Bool = true, at now: Double
    ) -> Decision {
        if !currentPlanServeable {
            driftSince = nil
            return .replan(reason: "a stage of the current plan has no live node that can serve it")
        }
        guard let live = liveBottleneckSeconds else {
            driftSince = nil
            return .keep(reason: "no partition fits the live nodes; keeping the current plan")
        }
        let reference = referenceBottleneckSeconds
        let change = reference > 0 ? abs(live - reference) / reference : (live > 0 ? Double.infinity : 0)
        let percent = Self.percentText(change)
        if let since = driftSince {
            if change < policy.exitFraction {
                driftSince = nil
                return .keep(reason: "drift ended: predicted bottleneck within \(percent) of the plan's")
            }
            let lasted = now - since
            guard lasted >= policy.sustainSeconds else {
                return .keep(reason: "drift of \(percent) for \(Self.secondsText(lasted)) (needs \(Self.secondsText(policy.sustainSeconds)))")
            }
            if let last = lastReplanAt, now - last < policy.cooldownSeconds {
                return .keep(reason: "drift of \(percent) sustained, but the last plan is only \(Self.secondsText(now - last)) old")
            }
            return .replan(
                reason: "predicted bottleneck moved \(percent) (\(Self.secondsText(reference)) → "
                    + "\(Self.secondsText(live)) per request) for \(Self.secondsText(lasted))")
        }
        if change > policy.enterFraction {
            driftSince = now
            return .keep(reason: "drift of \(percent) started; waiting \(Self.secondsText(policy.sustainSeconds)) to confirm")
        }
        return .keep(reason: "predicted bottleneck within \(percent) of the plan's")
    }

    /// Records that a new plan predicting `bottleneckSeconds` was published at `now`.
    public mutating func planPublished(bottleneckSeconds: Double, at now: Double) {
        referenceBottleneckSeconds = bottleneckSeconds
        driftSince = nil
        lastReplanAt = now
    }

    private static func percentText(_ fraction: Double) -> String {
        fraction.isFinite ? "\((fraction * 1000).rounded() / 10)%" : "∞%"
    }

    private static func secondsText(_ seconds: Double) -> String {
        if seconds < 1 { return "\((seconds * 1e6).rounded() / 1e3) ms" }
        return "\((seconds * 100).rounded() / 100) s"
    }
}
