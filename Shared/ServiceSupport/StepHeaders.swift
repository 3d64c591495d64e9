import AMQP
import Messages

/// Step headers as AMQP field tables (docs/design.md §4), in one place for every sender and receiver.
extension StepHeader {
    /// The header table of a step message.
    public var amqpHeaders: AMQPTable {
        typealias H = Names.Header
        var table: AMQPTable = [
            H.version: .int32(Int32(Names.schemaVersion)),
            H.key: .string(key),
            H.attempt: .int32(Int32(clamping: attempt)),
            H.scheduler: .string(scheduler),
            H.planVersion: .int64(planVersion),
            H.route: .array(route.map { .string($0) }),
            H.stage: .int32(Int32(clamping: stage)),
            H.kind: .string(kind.rawValue),
            H.position: .int32(Int32(clamping: position)),
            H.tokenCount: .int32(Int32(clamping: tokenCount)),
            H.dtype: .string(dtype.rawValue),
            H.shape: .array(shape.map { .int32(Int32(clamping: $0)) }),
            H.timings: .array(timings.map { .array([.string($0.node), .double($0.computeSeconds), .double($0.waitSeconds)]) }),
            H.temperature: .double(sampling.temperature),
            H.topP: .double(sampling.topP),
            H.topK: .int32(Int32(clamping: sampling.topK)),
            // AMQP has no unsigned 64-bit field: the seed travels as its bit pattern.
            H.seed: .int64(Int64(bitPattern: sampling.seed)),
        ]
        if let reserveTokens { table[H.reserveTokens] = .int32(Int32(clamping: reserveTokens)) }
        return table
    }

    /// Reads a step's headers, naming the first missing or mistyped one.
    public init(amqpHeaders table: AMQPTable?) throws(MessageError) {
        typealias H = Names.Header
        guard let table else { throw MessageError(field: "headers", reason: "a step needs headers") }
        let reader = HeaderReader(table: table)

        let version = try reader.integer(H.version)
        guard version == Int64(Names.schemaVersion) else {
            throw MessageError(field: H.version, reason: "unsupported schema version \(version) (this build speaks \(Names.schemaVersion))")
        }
        // Queue names are published to and logged: only well-formed names of the right kind pass.
        var route: [String] = []
        for item in try reader.array(H.route) {
            guard let queue = item.stringValue, Names.Queue.tier(ofStage: queue) != nil, HeaderReader.isQueueName(queue) else {
                throw MessageError(field: H.route, reason: "expected an array of stage queue names (hyperion.stage.<tier>.<node>)")
            }
            route.append(queue)
        }
        let scheduler = try reader.string(H.scheduler)
        guard scheduler.hasPrefix(Names.Queue.scheduler("")), HeaderReader.isQueueName(scheduler) else {
            throw MessageError(field: H.scheduler, reason: "expected a scheduler's queue name (\(Names.Queue.scheduler("<id>")))")
        }
        var shape: [Int] = []
        for item in try reader.array(H.shape) {
            guard let dimension = item.int64Value, dimension >= 0, dimension < 1 << 31 else {
                throw MessageError(field: H.shape, reason: "expected an array of sizes")
            }
            shape.append(Int(dimension))
        }
        var timings: [StageTiming] = []
        for item in try reader.array(H.timings) {
            guard let entry = item.arrayValue, entry.count == 3, let node = entry[0].stringValue,
                let compute = entry[1].doubleValue, let wait = entry[2].doubleValue
            else { throw MessageError(field: H.timings, reason: "expected [node, compute_s, wait_s] entries") }
            timings.append(StageTiming(node: node, computeSeconds: compute, waitSeconds: wait))
        }
        guard let kind = StepHeader.Kind(rawValue: try reader.string(H.kind)) else {
            throw MessageError(field: H.kind, reason: "expected \"prefill\" or \"decode\"")
        }
        guard let dtype = StepHeader.DType(rawValue: try reader.string(H.dtype)) else {
            throw MessageError(field: H.dtype, reason: "expected \"i32\" or \"f32\"")
        }
        self.init(
            key: try reader.string(H.key), attempt: try reader.int(H.attempt), scheduler: scheduler,
            planVersion: try reader.integer(H.planVersion), route: route, stage: try reader.int(H.stage), kind: kind,
            position: try reader.int(H.position), tokenCount: try reader.int(H.tokenCount), dtype: dtype, shape: shape, timings: timings,
            sampling: SamplingParameters(
                temperature: try reader.number(H.temperature), topP: try reader.number(H.topP), topK: try reader.int(H.topK),
                seed: UInt64(bitPattern: try reader.integer(H.seed))),
            reserveTokens: table[H.reserveTokens] == nil ? nil : try reader.int(H.reserveTokens))
    }
}

/// Typed access to a header table, naming the header at fault.
private struct HeaderReader {
    let table: AMQPTable

    func field(_ name: String) throws(MessageError) -> AMQPFieldValue {
        guard let value = table[name] else { throw MessageError(field: name, reason: "required header is missing") }
        return value
    }

    func string(_ name: String) throws(MessageError) -> String {
        let value = try field(name)
        guard let text = value.stringValue else { throw MessageError(field: name, reason: "expected a string") }
        return text
    }

    func integer(_ name: String) throws(MessageError) -> Int64 {
        let value = try field(name)
        guard let number = value.int64Value else { throw MessageError(field: name, reason: "expected an integer") }
        return number
    }

    func int(_ name: String) throws(MessageError) -> Int {
        let wide = try integer(name)
        // A range check, not abs(): abs(Int64.min) traps.
        guard let narrow = Int(exactly: wide), narrow > -(1 << 31), narrow < 1 << 31 else {
            throw MessageError(field: name, reason: "\(wide) is out of range")
        }
        return narrow
    }

    /// At most 255 bytes (AMQP's limit for a routing key) of `[A-Za-z0-9._-]`.
    static func isQueueName(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.count <= 255
            && text.utf8.allSatisfy { byte in
                switch byte {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                    UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"):
                    true
                default: false
                }
            }
    }

    func number(_ name: String) throws(MessageError) -> Double {
        let value = try field(name)
        guard let number = value.doubleValue else { throw MessageError(field: name, reason: "expected a number") }
        return number
    }

    func array(_ name: String) throws(MessageError) -> [AMQPFieldValue] {
        let value = try field(name)
        guard let items = value.arrayValue else { throw MessageError(field: name, reason: "expected an array") }
        return items
    }
}
