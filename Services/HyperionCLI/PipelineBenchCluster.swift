import AMQP
import Foundation
import JSON
import Messages
import ServiceSupport
import Synchronization

/// A whole Hyperion started by `hyperion bench pipeline` for one stage count: one planner, one
/// stage worker per tier and one scheduler, run from the executables beside `hyperion` on the
/// benchmark's broker, each logging to a file in `directory`.
final class PipelineBenchCluster {
    /// The tiers of examples/local-topology.json, in pipeline order; a cluster of n stages uses the first n.
    static let tierNames = ["edge", "fog", "cloud"]

    struct StartFailure: Error, CustomStringConvertible {
        var description: String
    }

    let stageCount: Int
    let directory: URL
    private(set) var children: [ChildProcess] = []
    private let registry: ChildRegistry

    var nodeIDs: [String] { Self.tierNames.prefix(stageCount).map { "\($0)-1" } }

    private init(stageCount: Int, directory: URL, registry: ChildRegistry) {
        self.stageCount = stageCount
        self.directory = directory
        self.registry = registry
    }

    /// Writes the topology, starts every process and returns once each worker heartbeats `serving`
    /// (stopping whatever it started when that does not happen within `timeoutSeconds`).
    static func start(
        stageCount: Int, binaries: URL, modelPath: String, amqpURL: String, workerThreads: Int, directory: URL,
        telemetry: AMQPConnection, registry: ChildRegistry, timeoutSeconds: Double = 90,
        plannerArguments: [String] = [], workerArguments: [String] = [], schedulerArguments: [String] = []
    ) async throws -> PipelineBenchCluster {
        let cluster = PipelineBenchCluster(stageCount: stageCount, directory: directory, registry: registry)
        let topology = directory.appendingPathComponent("topology-\(stageCount).json")
        try topologyJSON(stageCount: stageCount).serialized(pretty: true).write(to: topology, atomically: true, encoding: .utf8)

        // Listen before anything starts, so no heartbeat is missed.
        let queue = try await telemetry.declare(AMQPQueue(name: "", durable: false, exclusive: true, autoDelete: true))
        try await telemetry.declare(AMQPExchange(name: Names.Exchange.telemetry, kind: .topic))
        try await telemetry.bind(.queue(queue.name, to: Names.Exchange.telemetry, routingKey: "worker.#"))
        let beats = try await telemetry.consume(queue: queue.name, prefetchCount: 0, noAck: true)
        defer { Task { try? await beats.cancel() } }

        do {
            try cluster.launch(
                "partition-planner", binaries: binaries, amqpURL: amqpURL,
                arguments: ["--model", modelPath, "--topology", topology.path] + plannerArguments)
            for (tier, node) in zip(tierNames, cluster.nodeIDs) {
                try cluster.launch(
                    "stage-worker", label: node, binaries: binaries, amqpURL: amqpURL,
                    arguments: ["--tier", tier, "--node-id", node, "--model", modelPath, "--threads", "\(workerThreads)"] + workerArguments)
            }
            try cluster.launch(
                "scheduler", binaries: binaries, amqpURL: amqpURL,
                arguments: ["--id", "bench-scheduler", "--model", modelPath, "--routing", "arts"] + schedulerArguments)
            try await cluster.waitUntilServing(beats, timeoutSeconds: timeoutSeconds)
        } catch {
            await cluster.stop()
            throw error
        }
        return cluster
    }

    /// Stops every process and waits for each: the scheduler first, so that it finishes a request
    /// it holds (and acks it, leaving nothing in ingress) while the workers still serve; then the
    /// workers and the planner. SIGTERM, then SIGKILL after `timeoutSeconds`.
    func stop(timeoutSeconds: Double = 15) async {
        for group in ChildProcess.stopGroups(children) {
            for child in group { child.terminate() }
            for child in group {
                await child.waitForExit(timeoutSeconds: timeoutSeconds)
                registry.remove(child)
            }
        }
        children = []
    }

    /// The last lines of every process's log, for a failure message.
    func logTails(lines: Int = 15) -> String {
        children.map { child in
            "== \(child.label) (\(child.logFile.path))\n" + child.logTail(lines: lines)
        }.joined(separator: "\n")
    }

    /// The topology of examples/local-topology.json truncated to `stageCount` tiers.
    static func topologyJSON(stageCount: Int) -> JSONValue {
        let tiers: [JSONValue] = tierNames.prefix(stageCount).enumerated().map { index, name in
            var tier = JSONObject([
                ("name", .string(name)),
                (
                    "nodes",
                    [
                        .object(JSONObject([
                            ("id", .string("\(name)-1")), ("flops", 4.0e9), ("mem_bw_bytes_per_s", 5.0e9), ("memory_bytes", 1.0e9),
                        ]))
                    ]
                ),
            ])
            if index < stageCount - 1 {
                tier["link_to_next"] = .object(JSONObject([("bandwidth_bytes_per_s", 2.0e8), ("latency_s", 0.00015)]))
            }
            return .object(tier)
        }
        return .object(JSONObject([("tiers", .array(tiers))]))
    }

    private func launch(_ executable: String, label: String? = nil, binaries: URL, amqpURL: String, arguments: [String]) throws {
        let child = try ChildProcess(
            executable: binaries.appendingPathComponent(executable), label: label ?? executable, arguments: arguments,
            amqpURL: amqpURL, logFile: directory.appendingPathComponent("\(stageCount)-stage-\(label ?? executable).log"),
            stopsFirst: executable == "scheduler")
        children.append(child)
        registry.add(child)
    }

    private func waitUntilServing(_ beats: AMQPConsumer, timeoutSeconds: Double) async throws {
        var waiting = Set(nodeIDs)
        let deadline = Task {
            try? await Task.sleep(for: .seconds(timeoutSeconds))
            try? await beats.cancel()
        }
        defer { deadline.cancel() }
        for try await delivery in beats {
            if let beat = try? decodeMessage(Telemetry.self, from: delivery.body), beat.state == .serving {
                waiting.remove(beat.node)
            }
            if waiting.isEmpty { return }
            if let dead = children.first(where: { !$0.isRunning }) {
                throw StartFailure(description: "\(dead.label) exited before every worker served a plan; logs:\n\(logTails())")
            }
        }
        throw StartFailure(
            description: "\(waiting.sorted().joined(separator: ", ")) did not serve a plan within \(Int(timeoutSeconds)) s; logs:\n\(logTails())")
    }
}

/// One Hyperion executable started by the benchmark: its standard error goes to `logFile`, and
/// its environment is the benchmark's less every HYPERION_* variable, plus the broker URL, so
/// that only its arguments configure it.
final class ChildProcess: @unchecked Sendable {
    // Sendable: the fields are set once in init; other tasks only read `isRunning` (Foundation
    // guards it), and the benchmark's own task alone terminates and waits.
    let label: String
    let logFile: URL
    /// Whether it is stopped before the others (a scheduler, which needs the workers to finish).
    let stopsFirst: Bool
    private let process: Process

    init(executable: URL, label: String, arguments: [String], amqpURL: String, logFile: URL, stopsFirst: Bool) throws {
        guard FileManager.default.isExecutableFile(atPath: executable.path) else {
            throw PipelineBenchCluster.StartFailure(
                description: "\(executable.path) not found: build every product (swift build -c release) so it sits beside hyperion")
        }
        self.label = label
        self.logFile = logFile
        self.stopsFirst = stopsFirst
        _ = FileManager.default.createFile(atPath: logFile.path, contents: nil)
        let log = try FileHandle(forWritingTo: logFile)
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("HYPERION_") }
        environment["HYPERION_AMQP_URL"] = amqpURL
        environment["HYPERION_LOG_LEVEL"] = "info"
        process.environment = environment
        process.standardOutput = FileHandle.nullDevice
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        try process.run()
        try? log.close()
        self.process = process
    }

    var processIdentifier: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }

    /// Sends SIGTERM (callable from any thread).
    func terminate() {
        if process.isRunning { kill(process.processIdentifier, SIGTERM) }
    }

    /// `children` in the order they are stopped: those that stop first, then the rest.
    static func stopGroups(_ children: [ChildProcess]) -> [[ChildProcess]] {
        [children.filter(\.stopsFirst), children.filter { !$0.stopsFirst }].filter { !$0.isEmpty }
    }

    /// Waits for the exit after `terminate()`; kills the process when it outlasts `timeoutSeconds`.
    func waitForExit(timeoutSeconds: Double) async {
        let deadline = Clock.monotonicSeconds() + timeoutSeconds
        while process.isRunning, Clock.monotonicSeconds() < deadline {
            try? await Task.sleep(for: .milliseconds(50))
        }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    func logTail(lines: Int) -> String {
        guard let text = try? String(contentsOf: logFile, encoding: .utf8) else { return "(no log)" }
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }
}

/// The processes the benchmark has started and not yet stopped, so that an interrupt (SIGINT,
/// SIGTERM) of `hyperion` stops them too instead of leaving them serving on the broker.
final class ChildRegistry: Sendable {
    private let running = Mutex<[ChildProcess]>([])
    private let interruptedFlag = Mutex(false)

    func add(_ child: ChildProcess) { running.withLock { $0.append(child) } }
    func remove(_ child: ChildProcess) { running.withLock { $0.removeAll { $0 === child } } }

    /// Whether `interrupt()` has begun: the benchmark's own failures are then expected.
    var isInterrupted: Bool { interruptedFlag.withLock { $0 } }

    /// Stops every registered process in `ChildProcess.stopGroups` order, blocking the calling
    /// thread (a signal handler's, never the cooperative pool's) until they exit.
    func interrupt(timeoutSeconds: Double = 15) {
        interruptedFlag.withLock { $0 = true }
        for group in ChildProcess.stopGroups(running.withLock { $0 }) {
            for child in group { child.terminate() }
            let deadline = Clock.monotonicSeconds() + timeoutSeconds
            while group.contains(where: \.isRunning), Clock.monotonicSeconds() < deadline { sleepThread(seconds: 0.05) }
            for child in group where child.isRunning { kill(child.processIdentifier, SIGKILL) }
        }
    }
}
