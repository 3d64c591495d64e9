/// Every broker object and header name Hyperion uses, in one place (docs/design.md §3–4).
///
/// Service-to-service messages travel through `internal` keyed by the target queue's name; the
/// default exchange carries only client replies and RPC replies.
public enum Names {
    /// The wire schema version every message carries (`"v"` in JSON, `x-v` on binary messages).
    public static let schemaVersion = 1

    public enum Exchange {
        /// Direct exchange clients publish requests to; bound to the durable ingress queue.
        public static let ingress = "hyperion.ingress"
        /// Fanout exchange for client cancels; every scheduler binds its own exclusive queue.
        public static let cancel = "hyperion.cancel"
        /// Direct exchange for every point-to-point service message; routing key = queue name.
        public static let `internal` = "hyperion.internal"
        /// Fanout exchange announcing every new plan.
        public static let plan = "hyperion.plan"
        /// Topic exchange for heartbeats (`worker.<tier>.<node>`, `scheduler.<id>`, `planner`).
        public static let telemetry = "hyperion.telemetry"
        /// Fanout exchange for poison messages, each with `Header.error` giving the reason.
        public static let dead = "hyperion.dead"
        /// The default exchange: client and RPC replies only.
        public static let `default` = ""
    }

    public enum Queue {
        /// Durable queue of client requests (routing key equals its name).
        public static let ingress = "hyperion.ingress"
        /// Durable RPC queue answering the current plan.
        public static let planGet = "hyperion.plan.get"
        /// Durable queue holding dead-lettered messages.
        public static let dead = "hyperion.dead"

        /// A stage worker's exclusive queue of steps and control messages.
        public static func stage(tier: String, node: String) -> String { "hyperion.stage.\(tier).\(node)" }
        /// The tier of a stage queue's name (tier and node ids hold no dots); nil for other queues.
        public static func tier(ofStage queue: String) -> String? {
            let prefix = "hyperion.stage."
            guard queue.hasPrefix(prefix) else { return nil }
            let rest = queue.dropFirst(prefix.count)
            guard let dot = rest.firstIndex(of: "."), dot != rest.startIndex else { return nil }
            return String(rest[..<dot])
        }
        /// An emulated link's queue (docs/design.md §11): messages crossing the link wait here, each
        /// with `Header.linkDestination` naming the queue it is for.
        public static func link(_ name: String) -> String { "hyperion.link.\(name)" }
        /// A scheduler's exclusive queue of `sampled` and `step_error` events.
        public static func scheduler(_ id: String) -> String { "hyperion.sched.\(id)" }
        /// The prefix of a planner's own queues (`hyperion.planner.<id>.telemetry`).
        public static func planner(_ id: String) -> String { "hyperion.planner.\(id)" }
        /// A process's subscription to a fanout or topic exchange, named after its own queue so
        /// that its broker permissions cover it (`hyperion.stage.edge.e1.plan`).
        public static func subscription(owner: String, purpose: String) -> String { "\(owner).\(purpose)" }
        /// The direct reply-to pseudo queue.
        public static let directReplyTo = "amq.rabbitmq.reply-to"
    }

    public enum RoutingKey {
        public static func workerTelemetry(tier: String, node: String) -> String { "worker.\(tier).\(node)" }
        public static func schedulerTelemetry(_ id: String) -> String { "scheduler.\(id)" }
        public static let plannerTelemetry = "planner"
    }

    /// Header names of binary step messages and dead letters.
    public enum Header {
        public static let version = "x-v"
        public static let key = "x-key"
        public static let attempt = "x-attempt"
        public static let scheduler = "x-scheduler"
        public static let planVersion = "x-plan-version"
        public static let route = "x-route"
        public static let stage = "x-stage"
        public static let kind = "x-kind"
        public static let position = "x-pos"
        public static let tokenCount = "x-ntokens"
        public static let dtype = "x-dtype"
        public static let shape = "x-shape"
        public static let timings = "x-timings"
        public static let temperature = "x-temperature"
        public static let topP = "x-top-p"
        public static let topK = "x-top-k"
        public static let seed = "x-seed"
        /// Optional: context positions to reserve KV for at the attempt's first step.
        public static let reserveTokens = "x-kv-tokens"
        /// On a message sent through an emulated link: the queue it is for beyond the link.
        public static let linkDestination = "x-link-to"
        /// The reason a message was dead-lettered.
        public static let error = "x-hyperion-error"
    }

    /// Content types on the wire.
    public enum ContentType {
        public static let json = "application/json"
        public static let step = "application/octet-stream"
    }
}
