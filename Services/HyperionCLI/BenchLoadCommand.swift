import AMQP
import ArgumentParser
import Foundation
import Inference
import JSON
import Messages
import Profiles
import ServiceSupport
import Simulation
import Synchronization
import Measurement
import GGUF

/// `hyperion bench load`: a running Hyperion under open- or closed-loop load, reported in the
/// shape of `hyperion simulate --json` so measured and simulated systems compare line by line.
struct BenchLoadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "load",
        abstract: "Load a running Hyperion with many requests and measure latency, TTFT, inter-token latency, tokens/s and utilisation.",
        discussion: """
            Closed loop (--concurrency 1,16): that many clients each send a request, wait for its result, \
            and send the next, for --duration seconds per point. Open loop (--rates 0.5,1,2): requests \
            arrive at that mean rate whatever happens, Poisson or in bursts (--arrival bursty \
            --burst-size 8). Lengths are drawn around --prompt-tokens and --output-tokens (--lengths \
            fixed|uniform|exponential) with the simulator's generator, so the same --seed gives the \
            same traffic as `hyperion simulate`. Prompts are the first tokens of "1, 2, 3, …", which \
            the model continues without an end-of-generation token, so every request decodes all \
            its tokens. Requests are greedy and streamed.

            Measured at the client per request: TTFT (publish to first token), inter-token latency \
            (gap between streamed tokens), end-to-end latency (publish to result); the scheduler's \
            queue time comes from the result. tokens/s counts streamed tokens inside the measured \
            window (after --warm-up seconds) over its length. Utilisation per node and tier is the \
            mean busy fraction from worker heartbeats in the window (needs a user that may read \
            hyperion.telemetry; without it utilisation is left out), with the mean batch size.

            Against a running system: HYPERION_AMQP_URL or --amqp-url (as `hyperion generate`); the \
            scheduler's --max-in-flight bounds what it serves at once (default 32). With \
            --local-cluster the command starts its own planner, one stage worker per tier \
            (edge, fog, cloud) and a scheduler from the executables beside it on that broker, \
            configured as scripts/up starts them (re-planning on, the scheduler's defaults; it \
            refuses a broker where another Hyperion serves), with --max-batch-steps, \
            --batch-wait-ms, --threads, --routing and --partition passed on. Failures are printed \
            by reason.

            --json prints {"results":[{"system","workload","rate"|"concurrency","mean_latency_s", \
            "p95_latency_s","mean_ttft_s","tokens_per_s","utilization":{tier:0..1},"completed", \
            "failed",…}]}; --output FILE also writes it there. --system and --workload only label \
            the results (e.g. hyperion, gpipe, heft for an experiment's systems).

            Examples:
              hyperion bench load --local-cluster --concurrency 1,2,4,8,16,32 --duration 20
              HYPERION_AMQP_URL=amqp://client:…@host/%2F hyperion bench load --rates 1,2,4 --arrival bursty \\
                --system hyperion --workload chat --json --output results.json
            """)

    @OptionGroup
    var broker: BrokerOptions
    var amqpURL: String { broker.amqpURL }

    @Option(help: "Open-loop arrival rates in requests per second, comma-separated.")
    var rates: String?

    @Option(help: "Closed-loop client counts, comma-separated (default 1,16 when --rates is not given).")
    var concurrency: String?

    @Option(help: "Seconds of load per point, after the warm-up.")
    var duration = 20.0

    @Option(help: "Seconds of load before each point's measured window (not counted).")
    var warmUp = 3.0

    @Option(help: "Open loop: poisson or bursty.")
    var arrival = "poisson"

    @Option(help: "Mean requests per burst for --arrival bursty (geometric sizes).")
    var burstSize = 8.0

    @Option(help: "Mean prompt length in tokens.")
    var promptTokens = 64

    @Option(help: "Mean output length in tokens (max_tokens).")
    var outputTokens = 64

    @Option(help: "How lengths vary around the means: fixed, uniform or exponential.")
    var lengths = "fixed"

    @Option(help: "Seed of arrivals and lengths (the simulator's generator).")
    var seed: UInt64 = 1

    @Option(help: "Label of the system under test in the results (hyperion, gpipe, heft, …).")
    var system = "hyperion"

    @Option(help: "Label of the workload in the results (default p<prompt>-o<output>).")
    var workload: String?

    @Option(help: "Longest wait for one request's result, in seconds.")
    var timeoutSeconds = 300.0

    @Flag(help: "Start a local three-tier cluster on the broker for the run (see the discussion).")
    var localCluster = false

    @Option(help: "GGUF model file (default: $HYPERION_MODEL, else models/SmolLM2-135M-Instruct.Q4_1.gguf).")
    var model: String?

    @Option(help: "--local-cluster: compute threads per stage worker.")
    var threads = 1

    @Option(help: "--local-cluster: most steps per batch on each worker (1 turns batching off).")
    var maxBatchSteps = 16

    @Option(help: "--local-cluster: milliseconds a worker's small batch waits for the steps of other sequences it holds.")
    var batchWaitMs = 3.0

    @Option(help: "--local-cluster: routing policy of the scheduler (arts, round-robin, heft).")
    var routing = "arts"

    @Option(help: "--local-cluster: partition policy of the planner (bsdp, gpipe, heft).")
    var partition = "bsdp"

    @Flag(help: "Print the results as JSON.")
    var json = false

    @Option(help: "Also write the JSON results to this file.")
    var output: String?

    func validate() throws {
        if rates != nil, concurrency != nil { throw ValidationError("--rates and --concurrency: give one of them") }
        if let rates {
            guard let values = Self.numbers(rates), values.allSatisfy({ $0 > 0 && $0.isFinite }) else {
                throw ValidationError("--rates: expected numbers > 0, comma-separated, got '\(rates)'")
            }
            _ = values
        }
        if let concurrency {
            guard let values = Self.numbers(concurrency), values.allSatisfy({ $0 >= 1 && $0 == $0.rounded() && $0 <= 10_000 }) else {
                throw ValidationError("--concurrency: expected integers in 1...10000, comma-separated, got '\(concurrency)'")
            }
            _ = values
        }
        guard duration > 0, duration.isFinite else { throw ValidationError("--duration: expected a number of seconds > 0") }
        guard warmUp >= 0, warmUp.isFinite else { throw ValidationError("--warm-up: expected a number of seconds >= 0") }
        guard ["poisson", "bursty"].contains(arrival) else { throw ValidationError("--arrival: expected poisson or bursty, got '\(arrival)'") }
        guard burstSize >= 1, burstSize.isFinite else { throw ValidationError("--burst-size: expected a number >= 1") }
        guard promptTokens >= 1 else { throw ValidationError("--prompt-tokens: expected an integer >= 1") }
        guard outputTokens >= 1 else { throw ValidationError("--output-tokens: expected an integer >= 1") }
        guard ScenarioWorkload.LengthDistribution(rawValue: lengths) != nil else {
            throw ValidationError("--lengths: expected fixed, uniform or exponential, got '\(lengths)'")
        }
        guard timeoutSeconds > 0 else { throw ValidationError("--timeout-seconds: expected a number > 0") }
        guard threads >= 1 else { throw ValidationError("--threads: expected an integer >= 1") }
        guard batchWaitMs >= 0, batchWaitMs <= 1000 else { throw ValidationError("--batch-wait-ms: expected a number in 0...1000") }
        guard maxBatchSteps >= 1 else { throw ValidationError("--max-batch-steps: expected an integer >= 1") }
        guard ["arts", "round-robin", "heft"].contains(routing) else { throw ValidationError("--routing: expected arts, round-robin or heft") }
        guard ["bsdp", "gpipe", "heft"].contains(partition) else { throw ValidationError("--partition: expected bsdp, gpipe or heft") }
        if let workload, workload.isEmpty { throw ValidationError("--workload: must not be empty") }
        if let output, output.isEmpty { throw ValidationError("--output: must not be empty") }
    }

    static func numbers(_ text: String) -> [Double]? {
        let values = text.split(separator: ",", omittingEmptySubsequences: false).map { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.allSatisfy({ $0 != nil }) else { return nil }
        return values.compactMap { $0 }
    }

    /// The load points in order: rates, else client counts.
    var points: [LoadPoint] {
        if let rates { return (Self.numbers(rates) ?? []).map(LoadPoint.rate) }
        return (Self.numbers(concurrency ?? "1,16") ?? []).map { .concurrency(Int($0)) }
    }

    var workloadLabel: String { workload ?? "p\(promptTokens)-o\(outputTokens)" }

    func run() async throws {
        let modelPath = URL(fileURLWithPath: ModelLocation.resolve(model)).standardizedFileURL.path
        let tokenizer: Tokenizer
        do {
            tokenizer = try Tokenizer(gguf: try GGUFFile(path: modelPath))
        } catch {
            throw ValidationError("cannot open the model at \(modelPath) (its tokenizer builds the prompts): \(error)\(ModelLocation.hint(model))")
        }
        let distribution = ScenarioWorkload.LengthDistribution(rawValue: lengths) ?? .fixed
        // The longest prompt a draw can ask for: exponential draws are capped at 8× the mean.
        let longest = distribution == .exponential ? 8 * promptTokens : 2 * promptTokens
        let prompt = BenchPipelineCommand.countingPrompt(tokens: longest, tokenizer: tokenizer)

        let connection: AMQPConnection
        do {
            connection = try await AMQPConnection.connect(
                to: try AMQPURL(amqpURL),
                configuration: AMQPConnectionConfiguration(connectionName: "hyperion-bench-load", heartbeatSeconds: 10, reconnect: .disabled))
        } catch {
            printError("hyperion bench load: cannot reach the broker at \(AMQPURL.redacted(amqpURL)): \(error)")
            throw ExitCode.failure
        }
        defer { Task { await connection.close() } }

        let registry = ChildRegistry()
        let signals = TerminationSignals { _ in
            printError("interrupted: stopping what was started")
            registry.interrupt()
            Foundation.exit(130)
        }
        defer { signals.cancel() }
        var cluster: PipelineBenchCluster?
        var directory: URL?
        if localCluster {
            if let busy = await BenchPipelineCommand.otherHyperion(on: connection) {
                printError("hyperion bench load: refusing to start a cluster on \(AMQPURL.redacted(amqpURL)): \(busy). Give the benchmark a broker or virtual host of its own, or drop --local-cluster to load the system already running.")
                throw ExitCode.failure
            }
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("hyperion-bench-load-\(ProcessEnvironment.uuid().prefix(8))")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            directory = folder
            progress("starting partition-planner, edge/fog/cloud stage workers (\(threads) thread\(threads == 1 ? "" : "s"), batches of up to \(maxBatchSteps)) and a scheduler (\(routing)) on \(AMQPURL.redacted(amqpURL))")
            do {
                cluster = try await PipelineBenchCluster.start(
                    stageCount: 3, binaries: BenchPipelineCommand.binaryDirectory(), modelPath: modelPath, amqpURL: amqpURL,
                    workerThreads: threads, directory: folder, telemetry: connection, registry: registry,
                    plannerArguments: ["--partition", partition],
                    workerArguments: ["--max-batch-steps", "\(maxBatchSteps)", "--batch-wait-ms", "\(batchWaitMs)"],
                    schedulerArguments: ["--routing", routing])
            } catch {
                printError("hyperion bench load: \(error)\n(logs kept in \(folder.path))")
                throw ExitCode.failure
            }
            // Let the scheduler hear every worker before the first request.
            try await Task.sleep(for: .seconds(1.5))
        }

        let telemetry = await TelemetryRecorder.start(on: connection)
        if telemetry == nil { progress("note: cannot subscribe to hyperion.telemetry with this user; utilisation is left out") }
        var results: [LoadPointResult] = []
        var failure: (any Error)?
        for point in points {
            let shape = ScenarioWorkload(
                name: workloadLabel, distribution: distribution,
                planning: Workload(promptTokens: promptTokens, outputTokens: outputTokens, prefillChunk: 512, decodeBatch: 1, context: 2048, concurrency: 1))
            let run = LoadRun(
                point: point, traffic: LoadTraffic(seed: seed, arrival: arrival == "bursty" ? .bursty(meanBurstSize: burstSize) : .poisson, workload: shape),
                prompt: prompt, connection: connection, warmUpSeconds: warmUp, durationSeconds: duration, timeoutSeconds: timeoutSeconds,
                children: cluster?.children ?? [])
            progress("\(point): \(warmUp > 0 ? "\(Self.format(warmUp, 0)) s warm-up, then " : "")\(Self.format(duration, 0)) s measured")
            do {
                let records = try await run.run(progress: { self.progress($0) })
                let window = run.window
                var figures = LoadPointResult(
                    system: system, workload: workloadLabel, point: point, records: records, window: window,
                    beats: telemetry?.beats(from: window.start, to: window.end) ?? [])
                // Known only for the cluster this command started.
                if localCluster { (figures.partition, figures.routing) = (partition, routing) }
                progress("\(point): \(figures.summaryLine)")
                results.append(figures)
            } catch {
                failure = error
                break
            }
        }
        await telemetry?.stop()
        if let cluster {
            if failure != nil { printError("logs:\n\(cluster.logTails())") }
            progress("stopping the local cluster")
            await cluster.stop()
            if failure == nil, let directory { try? FileManager.default.removeItem(at: directory) }
        }
        if let failure {
            printError("hyperion bench load: \(failure)")
            throw ExitCode.failure
        }
        let report = JSONValue.object(JSONObject([("results", .array(results.map(\.jsonValue)))]))
        if let output {
            do {
                try report.serialized(pretty: true).write(toFile: output, atomically: true, encoding: .utf8)
            } catch {
                printError("hyperion bench load: cannot write --output \(output): \(error)")
                throw ExitCode.failure
            }
        }
        if json {
            print(report.serialized(pretty: true))
        } else {
            printTable(results)
        }
    }

    private func printTable(_ results: [LoadPointResult]) {
        print("hyperion bench load: system \(system), workload \(workloadLabel) (\(lengths) lengths around \(promptTokens) prompt + \(outputTokens) output tokens), \(Self.format(duration, 0)) s per point after \(Self.format(warmUp, 0)) s warm-up")
        print("load             done  fail  tokens/s  TTFT mean/p95 ms   ITL p50/p95/max ms     latency mean/p95 s  queue ms  batch  utilisation")
        for result in results {
            let utilisation = result.tierUtilization.map { "\($0.name) \(Self.format($0.fraction * 100, 0))%" }.joined(separator: " ")
            print([
                padded(result.point.description, 17), padded("\(result.completed)", 6), padded("\(result.failed)", 6),
                padded(Self.format(result.tokensPerSecond, 1), 10),
                padded("\(Self.format(result.meanTTFTSeconds * 1000, 0))/\(Self.format(result.p95TTFTSeconds * 1000, 0))", 19),
                padded("\(Self.format(result.p50InterTokenSeconds * 1000, 1))/\(Self.format(result.p95InterTokenSeconds * 1000, 1))/\(Self.format(result.maxInterTokenSeconds * 1000, 0))", 23),
                padded("\(Self.format(result.meanLatencySeconds, 2))/\(Self.format(result.p95LatencySeconds, 2))", 20),
                padded(Self.format(result.meanQueueSeconds * 1000, 1), 10),
                padded(result.meanBatchSteps.map { Self.format($0, 1) } ?? "-", 7), utilisation,
            ].joined())
        }
        for result in results where !result.failureReasons.isEmpty {
            print("failures at \(result.point), by reason:")
            for (reason, count) in result.failureReasons.sorted(by: { ($1.value, $0.key) < ($0.value, $1.key) }) {
                print("  \(count) × \(reason)")
            }
        }
        if let first = results.first, let last = results.last, results.count > 1, first.tokensPerSecond > 0 {
            print("tokens/s at \(last.point) = \(Self.format(last.tokensPerSecond / first.tokensPerSecond, 2))× that at \(first.point)")
        }
    }

    private func progress(_ line: String) { printError(line) }

    static func format(_ value: Double, _ digits: Int) -> String {
        value.isFinite ? String(format: "%.\(digits)f", value) : "-"
    }

}

/// What the client saw of one request.
struct LoadRecord: Sendable {
    var publishedAt: Double
    var tokenArrivals: [Double] = []
    var finishedAt: Double?
    var result: ResultReply?
    var failure: String?
}

/// One load point against the broker: issues requests (closed or open loop), collects replies.
struct LoadRun: Sendable {
    var point: LoadPoint
    var traffic: LoadTraffic
    var prompt: [Int32]
    var connection: AMQPConnection
    var warmUpSeconds: Double
    var durationSeconds: Double
    var timeoutSeconds: Double
    var children: [ChildProcess]
    let start = Clock.monotonicSeconds()

    var window: (start: Double, end: Double) { (start + warmUpSeconds, start + warmUpSeconds + durationSeconds) }

    /// Every request's record, once all have a result, failed or timed out.
    func run(progress: @escaping @Sendable (String) -> Void) async throws -> [LoadRecord] {
        let records = RecordBook()
        let stopIssuing = window.end
        let point = point, start = start, children = children
        let reporter = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                let now = Clock.monotonicSeconds()
                let done = records.all
                let failed = done.filter { $0.failure != nil }.count
                let sent = records.sentCount
                progress(
                    "  \(point) \(BenchLoadCommand.format(now - start, 0)) s: \(sent) sent, \(done.count - failed) done, \(failed) failed, "
                        + "\(sent - done.count) in flight, \(records.tokens(since: now - 1)) tok/s over the last second")
                if let exited = children.first(where: { !$0.isRunning }) { progress("  \(exited.label) exited") }
            }
        }
        defer { reporter.cancel() }
        var traffic = traffic
        switch point {
        case .concurrency(let clients):
            var lengths: [(Int, Int)] = []
            // Lengths are drawn up front, in the order clients take them.
            let budget = max(64, Int(Double(clients) * (warmUpSeconds + durationSeconds) * 20))
            for _ in 0..<budget { lengths.append(traffic.nextLengths()) }
            let drawn = lengths
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<clients {
                    group.addTask {
                        while Clock.monotonicSeconds() < stopIssuing {
                            let index = records.nextIndex()
                            let (promptLength, output) = drawn[index % drawn.count]
                            let record = await send(promptLength: promptLength, outputTokens: output, index: index, book: records)
                            records.append(record)
                            if let failure = record.failure, failure.hasPrefix("broker:") { throw LoadFailure(description: failure) }
                        }
                    }
                }
                try await group.waitForAll()
            }
        case .rate(let rate):
            try await withThrowingTaskGroup(of: Void.self) { group in
                var index = 0
                var arrivalAt = start
                while arrivalAt < stopIssuing {
                    let wait = arrivalAt - Clock.monotonicSeconds()
                    if wait > 0 { try await Task.sleep(for: .seconds(wait)) }
                    let (burst, gap) = traffic.nextArrival(ratePerSecond: rate)
                    for _ in 0..<burst {
                        let (promptLength, output) = traffic.nextLengths()
                        let current = index
                        index += 1
                        group.addTask {
                            let record = await send(promptLength: promptLength, outputTokens: output, index: current, book: records)
                            records.append(record)
                        }
                    }
                    arrivalAt += gap
                }
                try await group.waitForAll()
            }
        }
        return records.all
    }

    /// Publishes one streamed greedy request with direct reply-to and follows it to its end.
    private func send(promptLength: Int, outputTokens: Int, index: Int, book: RecordBook) async -> LoadRecord {
        let id = "load-\(ProcessEnvironment.uuid().prefix(8))-\(index)"
        let request = InferenceRequest(
            id: id, input: .tokens(Array(prompt.prefix(promptLength))), maxTokens: outputTokens, temperature: 0, stream: true)
        var record = LoadRecord(publishedAt: Clock.monotonicSeconds())
        let replies: AMQPConsumer
        do {
            replies = try await connection.consume(queue: AMQPRPCClient.directReplyQueue, prefetchCount: 0, noAck: true)
        } catch {
            record.failure = "broker: cannot consume replies: \(error)"
            return record
        }
        let timeout = timeoutSeconds
        let watchdog = Task {
            try? await Task.sleep(for: .seconds(timeout))
            if !Task.isCancelled { try? await replies.cancel() }
        }
        defer { watchdog.cancel() }
        do {
            let message = AMQPMessage(
                body: encodeMessage(request),
                properties: AMQPProperties(
                    contentType: Names.ContentType.json, deliveryMode: 2, correlationID: id, replyTo: AMQPRPCClient.directReplyQueue))
            record.publishedAt = Clock.monotonicSeconds()
            book.sent()
            try await connection.publish(message, exchange: Names.Exchange.ingress, routingKey: Names.Queue.ingress, onChannelOf: replies.tag)
            for try await delivery in replies {
                let now = Clock.monotonicSeconds()
                guard delivery.properties.correlationID == id, let reply = try? decodeMessage(Reply.self, from: delivery.body) else { continue }
                switch reply {
                case .token:
                    record.tokenArrivals.append(now)
                    book.token(at: now)
                case .result(let result):
                    record.result = result
                    record.finishedAt = now
                case .error(let error):
                    record.failure = "\(error.code.rawValue): \(error.message)"
                    record.finishedAt = now
                }
                if record.finishedAt != nil { break }
            }
        } catch {
            record.failure = "broker: \(error)"
        }
        try? await replies.cancel()
        if record.finishedAt == nil {
            record.failure = record.failure ?? "no result within \(Int(timeoutSeconds)) s"
            record.finishedAt = Clock.monotonicSeconds()
        }
        return record
    }
}

/// Every request's record so far, shared by the load point's client tasks.
final class RecordBook: Sendable {
    private let records = Mutex<[LoadRecord]>([])
    private let issued = Mutex(0)
    private let published = Mutex(0)
    private let tokenTimes = Mutex<[Double]>([])

    var all: [LoadRecord] { records.withLock { $0 } }
    func append(_ record: LoadRecord) { records.withLock { $0.append(record) } }
    var sentCount: Int { published.withLock { $0 } }
    func sent() { published.withLock { $0 += 1 } }

    /// A streamed token reached the client (for the progress line).
    func token(at time: Double) {
        tokenTimes.withLock { times in
            times.append(time)
            if times.count > 100_000 { times.removeFirst(50_000) }
        }
    }

    func tokens(since time: Double) -> Int { tokenTimes.withLock { $0.reversed().prefix { $0 > time }.count } }

    /// A fresh request number.
    func nextIndex() -> Int {
        issued.withLock { value in
            defer { value += 1 }
            return value
        }
    }
}

/// A failure that ends the benchmark (the broker, not the system under test).
struct LoadFailure: Error, CustomStringConvertible {
    var description: String
}

/// Worker heartbeats heard during the run, with when they arrived.
final class TelemetryRecorder: Sendable {
    private let consumer: AMQPConsumer
    private let received = Mutex<[(at: Double, beat: Telemetry)]>([])
    private let task = Mutex<Task<Void, Never>?>(nil)

    private init(consumer: AMQPConsumer) {
        self.consumer = consumer
    }

    /// Subscribes to every worker's heartbeats; nil when the broker refuses (a user without
    /// read access to hyperion.telemetry).
    static func start(on connection: AMQPConnection) async -> TelemetryRecorder? {
        do {
            let queue = try await connection.declare(AMQPQueue(name: "", durable: false, exclusive: true, autoDelete: true))
            try await connection.bind(.queue(queue.name, to: Names.Exchange.telemetry, routingKey: "worker.#"))
            let consumer = try await connection.consume(queue: queue.name, prefetchCount: 0, noAck: true)
            let recorder = TelemetryRecorder(consumer: consumer)
            let task = Task {
                do {
                    for try await delivery in consumer {
                        if let beat = try? decodeMessage(Telemetry.self, from: delivery.body) { recorder.add(beat) }
                    }
                } catch {}
            }
            recorder.task.withLock { $0 = task }
            return recorder
        } catch {
            return nil
        }
    }

    private func add(_ beat: Telemetry) {
        received.withLock { $0.append((Clock.monotonicSeconds(), beat)) }
    }

    /// Heartbeats that arrived in `start...end` (each covers the second before it).
    func beats(from start: Double, to end: Double) -> [Telemetry] {
        received.withLock { $0 }.filter { $0.at > start + 0.5 && $0.at <= end + 0.5 }.map(\.beat)
    }

    func stop() async {
        try? await consumer.cancel()
        task.withLock { $0?.cancel() }
    }
}

/// One load point's figures, as `hyperion simulate --json` reports a simulated one.
struct LoadPointResult {
    var system: String
    var partition: String?
    var routing: String?
    var workload: String
    var point: LoadPoint
    var completed: Int
    var failed: Int
    var failures: [String: Int]
    /// Failures by their full reason (code and message), for the table and the JSON.
    var failureReasons: [String: Int]
    /// The longest wait between two tokens of one request.
    var maxInterTokenSeconds: Double
    var meanLatencySeconds: Double
    var p50LatencySeconds: Double
    var p95LatencySeconds: Double
    var p99LatencySeconds: Double
    var meanTTFTSeconds: Double
    var p95TTFTSeconds: Double
    var p50InterTokenSeconds: Double
    var p95InterTokenSeconds: Double
    var meanQueueSeconds: Double
    var tokensPerSecond: Double
    var requestsPerSecond: Double
    var tierUtilization: [Share]
    var nodeUtilization: [Share]
    var meanBatchSteps: Double?

    init(system: String, workload: String, point: LoadPoint, records: [LoadRecord], window: (start: Double, end: Double), beats: [Telemetry]) {
        self.system = system
        self.workload = workload
        self.point = point
        // Requests sent in the measured window count for latencies; warm-up ones do not.
        let measured = records.filter { $0.publishedAt >= window.start }
        let done = measured.filter { $0.result != nil }
        completed = done.count
        failed = measured.count - done.count
        failures = Dictionary(measured.compactMap(\.failure).map { ($0.split(separator: ":").first.map(String.init) ?? $0, 1) }, uniquingKeysWith: +)
        failureReasons = Dictionary(measured.compactMap(\.failure).map { (String($0.prefix(200)), 1) }, uniquingKeysWith: +)
        let latencies = done.compactMap { record in record.finishedAt.map { $0 - record.publishedAt } }
        let ttfts = done.compactMap { record in record.tokenArrivals.first.map { $0 - record.publishedAt } }
        let gaps = done.flatMap { record in zip(record.tokenArrivals.dropFirst(), record.tokenArrivals).map { $0 - $1 } }
        meanLatencySeconds = mean(latencies)
        p50LatencySeconds = Percentile.of(latencies, 0.5)
        p95LatencySeconds = Percentile.of(latencies, 0.95)
        p99LatencySeconds = Percentile.of(latencies, 0.99)
        meanTTFTSeconds = mean(ttfts)
        p95TTFTSeconds = Percentile.of(ttfts, 0.95)
        p50InterTokenSeconds = Percentile.of(gaps, 0.5)
        p95InterTokenSeconds = Percentile.of(gaps, 0.95)
        maxInterTokenSeconds = gaps.max() ?? 0
        meanQueueSeconds = mean(done.compactMap { $0.result?.timings.queueSeconds })
        let span = max(window.end - window.start, 1e-9)
        let tokensInWindow = records.reduce(0) { $0 + $1.tokenArrivals.filter { $0 >= window.start && $0 < window.end }.count }
        tokensPerSecond = Double(tokensInWindow) / span
        requestsPerSecond = Double(records.filter { ($0.finishedAt ?? 0) >= window.start && ($0.finishedAt ?? .infinity) < window.end && $0.result != nil }.count) / span
        var nodeBusy: [String: [Double]] = [:]
        var nodeTier: [String: String] = [:]
        var steps = 0
        var batches = 0
        for beat in beats {
            nodeBusy[beat.node, default: []].append(beat.busyFraction)
            nodeTier[beat.node] = beat.tier
            steps += beat.batches?.steps ?? 0
            batches += beat.batches?.count ?? 0
        }
        nodeUtilization = nodeBusy.keys.sorted().map { Share(name: $0, fraction: mean(nodeBusy[$0] ?? [])) }
        var tiers: [String] = []
        for node in nodeBusy.keys.sorted() where !tiers.contains(nodeTier[node] ?? "") { tiers.append(nodeTier[node] ?? "") }
        let order = ["edge", "fog", "cloud"]
        tiers.sort { (order.firstIndex(of: $0) ?? order.count, $0) < (order.firstIndex(of: $1) ?? order.count, $1) }
        let nodes = nodeUtilization
        tierUtilization = tiers.map { tier in
            Share(name: tier, fraction: mean(nodes.filter { nodeTier[$0.name] == tier }.map(\.fraction)))
        }
        meanBatchSteps = batches > 0 ? Double(steps) / Double(batches) : nil
    }

    var summaryLine: String {
        let f = BenchLoadCommand.format
        return "\(completed) done, \(failed) failed, \(f(tokensPerSecond, 1)) tok/s, TTFT mean \(f(meanTTFTSeconds * 1000, 0)) ms, "
            + "ITL p50 \(f(p50InterTokenSeconds * 1000, 1)) ms p95 \(f(p95InterTokenSeconds * 1000, 1)) ms max \(f(maxInterTokenSeconds * 1000, 0)) ms, "
            + "latency mean \(f(meanLatencySeconds, 2)) s"
            + (meanBatchSteps.map { ", mean batch \(f($0, 1)) steps" } ?? "")
    }

    /// The simulator's load-point shape (`ExperimentPoint.jsonValue`) with the client-side extras.
    var jsonValue: JSONValue {
        var fields: [(String, JSONValue)] = [("system", .string(system))]
        if let partition, let routing { fields += [("partition", .string(partition)), ("routing", .string(routing))] }
        fields.append(("workload", .string(workload)))
        switch point {
        case .rate(let rate): fields.append(("rate", .double(rate)))
        case .concurrency(let clients): fields.append(("concurrency", .int(Int64(clients))))
        }
        fields += [
            ("mean_latency_s", .double(meanLatencySeconds)),
            ("p50_latency_s", .double(p50LatencySeconds)),
            ("p95_latency_s", .double(p95LatencySeconds)),
            ("p99_latency_s", .double(p99LatencySeconds)),
            ("mean_ttft_s", .double(meanTTFTSeconds)),
            ("p95_ttft_s", .double(p95TTFTSeconds)),
            ("tokens_per_s", .double(tokensPerSecond)),
            ("requests_per_s", .double(requestsPerSecond)),
            ("utilization", ExperimentPoint.shares(tierUtilization)),
            ("completed", .int(Int64(completed))),
            ("failed", .int(Int64(failed))),
            ("node_utilization", ExperimentPoint.shares(nodeUtilization)),
            ("p50_inter_token_s", .double(p50InterTokenSeconds)),
            ("p95_inter_token_s", .double(p95InterTokenSeconds)),
            ("mean_queue_s", .double(meanQueueSeconds)),
            ("mean_batch_steps", meanBatchSteps.map(JSONValue.double) ?? .null),
            ("failures", .object(JSONObject(failures.sorted { $0.key < $1.key }.map { ($0.key, JSONValue.int(Int64($0.value))) }))),
            ("failure_reasons", .object(JSONObject(failureReasons.sorted { $0.key < $1.key }.map { ($0.key, JSONValue.int(Int64($0.value))) }))),
            ("max_inter_token_s", .double(maxInterTokenSeconds)),
        ]
        return .object(JSONObject(fields))
    }
}
