/// Decides when live figures justify moving the cuts (docs/design.md §9), so that steady load never
/// moves the plan:
///
/// - **Margin and dwell.** A new plan is adopted only when it is predicted better than the plan in
///   force — both scored on the same live figures — by `marginFraction`, continuously for
///   `dwellSeconds`, and only once the plan in force is `dwellSeconds` old.
/// - **No return.** Cuts abandoned within `returnMemorySeconds` come back only with the larger
///   `returnMarginFraction`, so two cuts cannot take turns.
/// - **Rollback.** `verifySeconds` after a switch, the new plan's realised bottleneck (rescored on
///   the figures measured since, under the new cuts) is compared with its prediction and with the
///   replaced cuts scored on the same figures; a switch that made things worse by more than
///   `rollbackTolerance` is undone (the figures a cut itself moves show up here).
/// - A plan whose stage has no live node that can serve it is replaced at once.
///
/// Pure: the caller passes monotonic seconds and logs the reasons, which carry the figures.
public struct ReplanController: Sendable {
    public struct Policy: Sendable, Hashable {
        /// Least predicted gain (0.2 = the new bottleneck 20% below the current one).
        public var marginFraction: Double
        /// How long the gain must last, and the least age of a plan before it is replaced.
        public var dwellSeconds: Double
        /// Least gain to go back to cuts abandoned within `returnMemorySeconds`.
        public var returnMarginFraction: Double
        public var returnMemorySeconds: Double
        /// How long after a switch its realised bottleneck is checked.
        public var verifySeconds: Double
        /// How much worse than the replaced plan a switch may realise before it is rolled back.
        public var rollbackTolerance: Double

        public init(
            marginFraction: Double = 0.2, dwellSeconds: Double = 180, returnMarginFraction: Double = 0.5,
            returnMemorySeconds: Double = 1800, verifySeconds: Double = 120, rollbackTolerance: Double = 0.05
        ) {
            self.marginFraction = marginFraction
            self.dwellSeconds = dwellSeconds
            self.returnMarginFraction = max(returnMarginFraction, marginFraction)
            self.returnMemorySeconds = returnMemorySeconds
            self.verifySeconds = verifySeconds
            self.rollbackTolerance = rollbackTolerance
        }
    }

    /// A plan's cuts and its bottleneck on the live figures.
    public struct Option: Sendable, Hashable {
        /// Identifies the cuts (tier and first block of every stage).
        public var cuts: String
        public var bottleneckSeconds: Double

        public init(cuts: String, bottleneckSeconds: Double) {
            self.cuts = cuts
            self.bottleneckSeconds = bottleneckSeconds
        }
    }

    public enum Decision: Sendable, Hashable {
        /// Keep the plan in force; `notable` marks a reason worth an info-level log line.
        case keep(reason: String, notable: Bool)
        /// Publish the candidate's cuts.
        case switchTo(reason: String)
        /// Publish the replaced plan's cuts again.
        case rollBack(cuts: String, reason: String)

        public var changesPlan: Bool {
            if case .keep = self { return false }
            return true
        }
    }

    /// A switch waiting for its check.
    private struct Switch: Sendable, Hashable {
        var at: Double
        var replacedCuts: String
        var predictedSeconds: Double
    }

    public var policy: Policy
    /// When the plan in force was published.
    public private(set) var publishedAt: Double
    /// When the candidate's gain reached the margin, if it still holds.
    public private(set) var gainSince: Double?
    /// Cuts abandoned, with when.
    public private(set) var abandoned: [String: Double] = [:]
    private var pendingCheck: Switch?

    public init(policy: Policy = Policy(), publishedAt: Double) {
        self.policy = policy
        self.publishedAt = publishedAt
    }

    /// Feeds one evaluation. `current` is the plan in force rescored on live figures (nil when a
    /// stage has no live node that can serve it); `candidate` the best fresh plan (nil: none fits);
    /// `replaced` the plan the current one replaced, rescored on the same figures (nil: none, or
    /// it no longer fits).
    public mutating func observe(current: Option?, candidate: Option?, replaced: Option? = nil, at now: Double) -> Decision {
        guard let current else {
            gainSince = nil
            pendingCheck = nil
            return .switchTo(reason: "a stage of the current plan has no live node that can serve it")
        }
        if let check = pendingCheck, now - check.at >= policy.verifySeconds {
            pendingCheck = nil
            let realised = current.bottleneckSeconds
            var figures = "predicted \(Self.seconds(check.predictedSeconds)), realised \(Self.seconds(realised)) per request"
            if let replaced, replaced.cuts == check.replacedCuts {
                figures += "; the replaced cuts would give \(Self.seconds(replaced.bottleneckSeconds))"
                if realised > replaced.bottleneckSeconds * (1 + policy.rollbackTolerance) {
                    gainSince = nil
                    return .rollBack(cuts: replaced.cuts, reason: "the switch made things worse (\(figures)); rolling back")
                }
            }
            return .keep(reason: "switch checked: \(figures)", notable: true)
        }
        guard let candidate, candidate.cuts != current.cuts, current.bottleneckSeconds > 0 else {
            let ended = gainSince != nil
            gainSince = nil
            let best = "the plan in force is the best on live figures (\(Self.seconds(current.bottleneckSeconds)) per request)"
            return .keep(reason: ended ? "gain ended: \(best)" : best, notable: ended)
        }
        let gain = (current.bottleneckSeconds - candidate.bottleneckSeconds) / current.bottleneckSeconds
        let returning = abandoned[candidate.cuts].map { now - $0 < policy.returnMemorySeconds } ?? false
        let margin = returning ? policy.returnMarginFraction : policy.marginFraction
        let figures = "\(Self.seconds(current.bottleneckSeconds)) → \(Self.seconds(candidate.bottleneckSeconds)) per request, "
            + "\(Self.percent(gain)) better (needs \(Self.percent(margin))\(returning ? ", cuts abandoned recently" : ""))"
        guard gain >= margin else {
            let ended = gainSince != nil
            gainSince = nil
            return .keep(reason: ended ? "gain ended, below the margin: \(figures)" : "keeping the plan: \(figures)", notable: ended)
        }
        guard let since = gainSince else {
            gainSince = now
            return .keep(reason: "gain started: \(figures); waiting \(Self.seconds(policy.dwellSeconds)) to confirm", notable: true)
        }
        let lasted = now - since
        let age = now - publishedAt
        guard lasted >= policy.dwellSeconds, age >= policy.dwellSeconds else {
            return .keep(reason: "gain of \(Self.percent(gain)) for \(Self.seconds(lasted)), plan \(Self.seconds(age)) old (dwell \(Self.seconds(policy.dwellSeconds)))", notable: false)
        }
        return .switchTo(reason: "\(figures), held for \(Self.seconds(lasted))")
    }

    /// Records that a plan was published at `now`: `replaced` is the plan it replaced (its cuts
    /// and its bottleneck on the live figures then), `predictedSeconds` the new plan's prediction.
    /// A rollback is not itself checked.
    public mutating func published(replacing replaced: Option?, predictedSeconds: Double, rollback: Bool = false, at now: Double) {
        publishedAt = now
        gainSince = nil
        abandoned = abandoned.filter { now - $0.value < policy.returnMemorySeconds }
        if let replaced {
            abandoned[replaced.cuts] = now
            pendingCheck = rollback ? nil : Switch(at: now, replacedCuts: replaced.cuts, predictedSeconds: predictedSeconds)
        }
    }

    static func percent(_ fraction: Double) -> String {
        fraction.isFinite ? "\((fraction * 1000).rounded() / 10)%" : "∞%"
    }

    static func seconds(_ seconds: Double) -> String {
        if seconds < 1 { return "\((seconds * 1e6).rounded() / 1e3) ms" }
        return "\((seconds * 100).rounded() / 100) s"
    }
}
