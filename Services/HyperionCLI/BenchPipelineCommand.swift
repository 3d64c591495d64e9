import AMQP
import ArgumentParser
import Foundation
import Inference
import JSON
import Messages
import ServiceSupport
import Measurement
import GGUF

/// `hyperion bench pipeline`: what splitting the model across stage workers costs one request,
/// beside the whole model in this process.
struct BenchPipelineCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pipeline",
        abstract: "Measure time to first token and decode tokens/s of one request through 1, 2 and 3 stages, as ratios to --local.",
        discussion: """
            For each stage count the benchmark writes a topology of that many tiers (edge, fog, cloud, \
            figures as in examples/local-topology.json), starts partition-planner, one stage-worker per \
            tier and one scheduler from the folder holding this hyperion binary, waits until every \
            worker heartbeats serving, sends a warm-up request, then runs --repeats rounds; afterwards \
            it stops those processes (SIGTERM, the scheduler first) before the next stage count. A \
            round is one local generation (the whole model in this process, as generate --local), one \
            max_tokens 1 request and the measured request, all with the same prompt, decode count and \
            threads (workers and local alike: 1 by default), so load from elsewhere on the machine hits \
            the local and the pipelined runs alike. Requests are greedy and streamed: --prompt, else a \
            counting prompt "1, 2, 3, …" of --prompt-tokens tokens, which the model continues without \
            an end-of-generation token; the finish column shows whether every run decoded all tokens.

            Measured at the client: TTFT = publication to the first streamed token; decode tokens/s = \
            tokens after the first / time from the first to the last token. Ratios compare with the \
            local runs of the same rounds. Hop overhead = (client time per decode token - stage compute \
            per decode token) / (stages + 1) hops (scheduler to stage 0, stage to stage, last stage to \
            scheduler); stage compute per decode token is the result's timings less those of the \
            max_tokens 1 request (the prefill). Figures are medians of the rounds; --json adds every \
            round and the overhead per hop against the local decode time (hop_overhead_vs_local_ms). \
            Target: 3-stage decode >= 0.8x local. Other load on the machine shows in every figure.

            The services use fixed broker object names, so the benchmark refuses a broker (virtual host) \
            where a scheduler or planner already consumes, or where requests wait in hyperion.ingress: \
            give it one of its own (scripts/broker with HYPERION_BROKER_* set, or a fresh vhost). Service \
            logs go to a temporary folder, kept and named when something fails. SIGINT stops every \
            process it started.

            Examples:
              hyperion bench pipeline
              hyperion bench pipeline --stages 1,3 --repeats 1 --json
            """)

    @OptionGroup
    var broker: BrokerOptions
    var amqpURL: String { broker.amqpURL }

    @Option(help: "GGUF model file (default: $HYPERION_MODEL, else models/SmolLM2-135M-Instruct.Q4_1.gguf).")
    var model: String?

    @Option(help: "Prompt text (default: a counting prompt \"1, 2, 3, …\" of --prompt-tokens tokens, which the model continues without stopping).")
    var prompt: String?

    @Option(help: "Length of the default counting prompt, in tokens (the reference fixture's long prompt has 182).")
    var promptTokens = 182

    @Option(help: "Tokens to generate per request (max_tokens).")
    var outputTokens = 64

    /// The old spelling of --output-tokens, kept hidden for one release.
    @Option(name: .customLong("decode-tokens"), help: .hidden)
    var oldDecodeTokens: Int?

    @Option(help: "Stage counts to measure, comma-separated, each 1...3.")
    var stages = "1,2,3"

    @Option(help: "Rounds per stage count, each one local generation and one measured request.")
    var repeats = 3

    @Option(help: "Compute threads of every stage worker and of the local baseline.")
    var threads = 1

    @Option(help: "Longest wait for one reply, in seconds.")
    var timeoutSeconds = 300.0

    @Flag(help: "Print the figures as one JSON object.")
    var json = false

    var stageCounts: [Int] {
        stages.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
    }

    mutating func validate() throws {
        if let oldDecodeTokens { outputTokens = oldDecodeTokens }
        let counts = stageCounts
        guard !counts.isEmpty, counts.count == stages.split(separator: ",").count,
            counts.allSatisfy({ (1...PipelineBenchCluster.tierNames.count).contains($0) }), Set(counts).count == counts.count
        else {
            throw ValidationError("--stages: expected distinct stage counts in 1...3, comma-separated, got '\(stages)'")
        }
        guard outputTokens >= 2 else { throw ValidationError("--output-tokens: expected an integer >= 2 (decode speed needs two tokens)") }
        guard repeats >= 1 else { throw ValidationError("--repeats: expected an integer >= 1") }
        guard threads >= 1 else { throw ValidationError("--threads: expected an integer >= 1") }
        guard timeoutSeconds > 0 else { throw ValidationError("--timeout-seconds: expected a number > 0") }
        if let prompt, prompt.isEmpty { throw ValidationError("--prompt: must not be empty") }
        guard promptTokens >= 1 else { throw ValidationError("--prompt-tokens: expected an integer >= 1") }
    }

    func run() async throws {
        let binaries = Self.binaryDirectory()
        let modelPath = URL(fileURLWithPath: ModelLocation.resolve(model)).standardizedFileURL.path
        let file: GGUFFile
        do {
            file = try GGUFFile(path: modelPath)
        } catch {
            throw ValidationError("cannot open the model at \(modelPath): \(error)\(ModelLocation.hint(model))")
        }
        let transformer = try TransformerModel(file: file)
        let tokenizer = try Tokenizer(gguf: file)
        let promptTokens = prompt.map { tokenizer.encode($0) } ?? Self.countingPrompt(tokens: self.promptTokens, tokenizer: tokenizer)
        guard !promptTokens.isEmpty else { throw ValidationError("--prompt: encodes to no tokens") }

        let connection: AMQPConnection
        do {
            connection = try await AMQPConnection.connect(
                to: try AMQPURL(amqpURL),
                configuration: AMQPConnectionConfiguration(connectionName: "hyperion-bench-pipeline", heartbeatSeconds: 10, reconnect: .disabled))
        } catch {
            printError("hyperion bench pipeline: cannot reach the broker at \(AMQPURL.redacted(amqpURL)): \(error)")
            throw ExitCode.failure
        }
        defer { Task { await connection.close() } }
        if let busy = await Self.otherHyperion(on: connection) {
            printError("hyperion bench pipeline: refusing to run on \(AMQPURL.redacted(amqpURL)): \(busy). The services use fixed broker object names, so a benchmark would mix with it; give the benchmark a broker or virtual host of its own.")
            throw ExitCode.failure
        }

        let registry = ChildRegistry()
        let signals = TerminationSignals { _ in
            printError("interrupted: stopping the scheduler, then the workers and the planner")
            registry.interrupt()
            Foundation.exit(130)
        }
        defer { signals.cancel() }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("hyperion-bench-pipeline-\(ProcessEnvironment.uuid().prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)

        let baseline = LocalBaseline(model: transformer, tokenizer: tokenizer, threads: threads)
        progress("local warm-up: \(promptTokens.count)-token prompt, \(outputTokens) decode tokens, \(threads) thread\(threads == 1 ? "" : "s")")
        let warmUp = try await baseline.generate(promptTokens: promptTokens, decodeTokens: outputTokens)

        var rows: [PipelineRow] = []
        for stageCount in stageCounts {
            progress("\(stageCount) stage\(stageCount == 1 ? "" : "s"): starting planner, \(stageCount) worker\(stageCount == 1 ? "" : "s") and a scheduler")
            let cluster: PipelineBenchCluster
            do {
                cluster = try await PipelineBenchCluster.start(
                    stageCount: stageCount, binaries: binaries, modelPath: modelPath, amqpURL: amqpURL, workerThreads: threads,
                    directory: directory, telemetry: connection, registry: registry)
            } catch {
                printError("hyperion bench pipeline: \(error)\n(logs kept in \(directory.path))")
                throw ExitCode.failure
            }
            do {
                rows.append(try await measure(cluster: cluster, baseline: baseline, promptTokens: promptTokens, on: connection, registry: registry))
            } catch {
                // An interrupt stops the processes under the request; its handler ends the run.
                while registry.isInterrupted { try? await Task.sleep(for: .seconds(1)) }
                printError("hyperion bench pipeline: \(stageCount) stages: \(error)\nlogs:\n\(cluster.logTails())\n(logs kept in \(directory.path))")
                await cluster.stop()
                throw ExitCode.failure
            }
            progress("\(stageCount) stage\(stageCount == 1 ? "" : "s"): stopping")
            await cluster.stop()
        }
        try? FileManager.default.removeItem(at: directory)

        let local = LocalSummary(runs: rows.flatMap(\.localRuns), expectedTokens: baseline.comparableTokens(warmUp.tokens))
        if json {
            print(report(local: local, rows: rows, promptTokens: promptTokens.count).serialized(pretty: true))
        } else {
            printTable(local: local, rows: rows, promptTokens: promptTokens.count)
        }
    }

    // MARK: Rounds

    /// One warm-up request, then --repeats rounds of: a local generation, a prefill-only request
    /// (its stage compute is subtracted) and the measured request. Alternating the local and the
    /// pipelined runs lets load from elsewhere on the machine hit both alike.
    private func measure(
        cluster: PipelineBenchCluster, baseline: LocalBaseline, promptTokens: [Int32], on connection: AMQPConnection,
        registry: ChildRegistry
    ) async throws -> PipelineRow {
        let stageCount = cluster.stageCount
        let label = "\(stageCount) stage\(stageCount == 1 ? "" : "s")"
        // Let the scheduler hear every worker's heartbeat before the first request.
        try await Task.sleep(for: .seconds(1.5))
        progress("\(label): serving; warm-up request")
        _ = try await send(request(id: "bench-\(stageCount)-warm-up", promptTokens: promptTokens, maxTokens: 4), on: connection, cluster: cluster, registry: registry)
        var runs: [PipelineRun] = []
        var localRuns: [LocalRun] = []
        for index in 0..<repeats {
            let local = try await baseline.generate(promptTokens: promptTokens, decodeTokens: outputTokens)
            localRuns.append(local)
            let probe = try await send(
                request(id: "bench-\(stageCount)-prefill-\(index)", promptTokens: promptTokens, maxTokens: 1), on: connection, cluster: cluster, registry: registry)
            let measured = try await send(
                request(id: "bench-\(stageCount)-run-\(index)", promptTokens: promptTokens, maxTokens: outputTokens), on: connection, cluster: cluster, registry: registry)
            let run = PipelineRun(stageCount: stageCount, measured: measured, prefill: probe.result.timings)
            runs.append(run)
            progress(
                "\(label) round \(index + 1)/\(repeats): local TTFT \(format(local.ttftSeconds * 1000, digits: 1)) ms, \(format(local.decodeTokensPerSecond ?? 0, digits: 1)) tok/s; "
                    + "pipeline TTFT \(format(run.ttftSeconds * 1000, digits: 1)) ms, \(format(run.decodeTokensPerSecond, digits: 1)) tok/s, "
                    + "\(run.tokens.count) tokens (\(run.finishReason.rawValue)), route \(measured.result.route.joined(separator: " → "))")
        }
        return PipelineRow(stageCount: stageCount, runs: runs, localRuns: localRuns)
    }

    private func request(id: String, promptTokens: [Int32], maxTokens: Int) -> InferenceRequest {
        InferenceRequest(id: id, input: .tokens(promptTokens), maxTokens: maxTokens, temperature: 0, stream: true)
    }

    /// Publishes `request` onto ingress with direct reply-to on the benchmark's long-lived
    /// connection (no connection set-up inside the timed span) and timestamps every reply. Gives
    /// up when a process of `cluster` exits or after --timeout-seconds.
    private func send(
        _ request: InferenceRequest, on connection: AMQPConnection, cluster: PipelineBenchCluster, registry: ChildRegistry
    ) async throws -> TimedReply {
        let id = request.id ?? ProcessEnvironment.uuid()
        // After an interrupt no scheduler takes requests: one published now would wait in ingress.
        guard !registry.isInterrupted else { throw BenchFailure(description: "interrupted") }
        let replies = try await connection.consume(queue: AMQPRPCClient.directReplyQueue, prefetchCount: 0, noAck: true)
        let timeout = timeoutSeconds
        let children = cluster.children
        // Ends the reply stream when waiting is pointless; returns why, or nil when cancelled first.
        let watchdog = Task { () -> String? in
            let deadline = Clock.monotonicSeconds() + timeout
            var reason: String?
            while reason == nil, !Task.isCancelled {
                if let exited = children.first(where: { !$0.isRunning }) {
                    reason = "\(exited.label) exited while request \(id) was in flight"
                } else if Clock.monotonicSeconds() > deadline {
                    reason = "request \(id): no result within \(Int(timeout)) s"
                } else {
                    try? await Task.sleep(for: .milliseconds(200))
                }
            }
            guard let reason else { return nil }
            try? await replies.cancel()
            return reason
        }
        let outcome: Result<TimedReply?, any Error>
        do {
            let message = AMQPMessage(
                body: encodeMessage(request),
                properties: AMQPProperties(
                    contentType: Names.ContentType.json, deliveryMode: 2, correlationID: id, replyTo: AMQPRPCClient.directReplyQueue))
            let publishedAt = Clock.monotonicSeconds()
            try await connection.publish(message, exchange: Names.Exchange.ingress, routingKey: Names.Queue.ingress, onChannelOf: replies.tag)
            outcome = .success(try await Self.collect(id: id, publishedAt: publishedAt, from: replies))
        } catch {
            outcome = .failure(error)
        }
        watchdog.cancel()
        let reason = await watchdog.value
        if reason == nil { try? await replies.cancel() }
        guard let reply = try outcome.get() else {
            throw BenchFailure(description: reason ?? "request \(id): the reply stream ended without a result")
        }
        return reply
    }

    /// Reads replies until the result (nil when the stream ends first).
    private static func collect(id: String, publishedAt: Double, from replies: AMQPConsumer) async throws -> TimedReply? {
        var arrivals: [Double] = []
        for try await delivery in replies {
            let now = Clock.monotonicSeconds()
            guard delivery.properties.correlationID == id, let reply = try? decodeMessage(Reply.self, from: delivery.body) else { continue }
            switch reply {
            case .token: arrivals.append(now)
            case .result(let result): return TimedReply(publishedAt: publishedAt, tokenArrivals: arrivals, result: result)
            case .error(let error): throw BenchFailure(description: "request \(id) failed: \(error.code.rawValue): \(error.message)")
            }
        }
        return nil
    }

    /// Why the broker is not the benchmark's alone, or nil when it is.
    static func otherHyperion(on connection: AMQPConnection) async -> String? {
        if let ingress = try? await connection.inspectQueue(Names.Queue.ingress) {
            if ingress.consumerCount > 0 {
                return "\(ingress.consumerCount) scheduler(s) already consume \(Names.Queue.ingress)"
            }
            if ingress.messageCount > 0 {
                return "\(ingress.messageCount) request(s) wait in \(Names.Queue.ingress) and the benchmark's scheduler would take them "
                    + "(if they are left over from an interrupted run: rabbitmqctl purge_queue \(Names.Queue.ingress))"
            }
        }
        if let planGet = try? await connection.inspectQueue(Names.Queue.planGet), planGet.consumerCount > 0 {
            return "a partition-planner already consumes \(Names.Queue.planGet)"
        }
        return nil
    }

    /// The folder of the running `hyperion` executable, where its sibling services are built.
    static func binaryDirectory() -> URL {
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: executable).deletingLastPathComponent()
    }

    /// The first `tokens` tokens of "1, 2, 3, …": a prompt the model continues for hundreds of
    /// tokens without an end-of-generation token, so every run decodes all its tokens (the
    /// fixture's long prose prompt ends its answer after about 30).
    static func countingPrompt(tokens: Int, tokenizer: Tokenizer) -> [Int32] {
        var text = ""
        var next = 1
        var encoded: [Int32] = []
        while encoded.count < tokens {
            for _ in 0..<max(8, (tokens - encoded.count) / 4) {
                text += "\(next), "
                next += 1
            }
            encoded = tokenizer.encode(String(text.dropLast()))
        }
        return Array(encoded.prefix(tokens))
    }

    // MARK: Report

    private func printTable(local: LocalSummary, rows: [PipelineRow], promptTokens: Int) {
        print("hyperion bench pipeline: \(promptTokens)-token \(prompt == nil ? "counting" : "given") prompt, \(outputTokens) greedy decode tokens, \(threads) compute thread\(threads == 1 ? "" : "s") per stage worker and locally; medians of \(repeats) rounds per stage count")
        print(
            "local (in-process, \(local.runs.count) runs): TTFT \(format(local.ttftSeconds * 1000, digits: 1)) ms, decode \(format(local.decodeTokensPerSecond, digits: 1)) tok/s, "
                + "\(local.tokenCount) tokens (\(local.finishReason))")
        print("")
        print("stages  TTFT ms  ×local  decode tok/s  ×local  local tok/s  ms/token  compute ms/token  hop overhead ms  tokens  finish  same tokens as local")
        for row in rows {
            let columns = [
                padded("\(row.stageCount)", 8),
                padded(format(row.ttftSeconds * 1000, digits: 1), 9),
                padded(format(row.ttftRatio, digits: 2), 8),
                padded(format(row.decodeTokensPerSecond, digits: 1), 14),
                padded(format(row.decodeRatio, digits: 2), 8),
                padded(format(row.localDecodeTokensPerSecond, digits: 1), 13),
                padded(format(row.clientSecondsPerDecodeToken * 1000, digits: 2), 10),
                padded(format(row.computeSecondsPerDecodeToken * 1000, digits: 2), 18),
                padded(format(row.hopOverheadSeconds * 1000, digits: 3), 17),
                padded("\(row.tokenCount)", 8),
                padded(row.finishReason, 8),
                row.matches(local.expectedTokens) ? "yes" : "no",
            ]
            print(columns.joined())
        }
        if local.finishReason != "length" || rows.contains(where: { $0.finishReason != "length" }) {
            print("")
            print("note: generation stopped before \(outputTokens) tokens (end of generation), so the decode figures rest on fewer steps; the counting prompt (no --prompt) avoids that.")
        }
        if let three = rows.first(where: { $0.stageCount == 3 }) {
            print("")
            print("target: 3-stage decode ≥ 0.8× local: \(format(three.decodeRatio, digits: 2))× (\(three.decodeRatio >= 0.8 ? "met" : "not met"))")
        }
        print("×local: against the local runs of the same rounds (local tok/s); TTFT ×local above 1 is slower than local.")
        print("hop overhead: (ms/token − compute ms/token) / (stages + 1) hops: broker, serialisation and wake-up costs of one hop.")
    }

    private func report(local: LocalSummary, rows: [PipelineRow], promptTokens: Int) -> JSONValue {
        let settings = JSONObject([
            ("prompt_tokens", .int(Int64(promptTokens))), ("prompt", .string(prompt == nil ? "counting" : "given")),
            ("decode_tokens", .int(Int64(outputTokens))), ("threads", .int(Int64(threads))), ("repeats", .int(Int64(repeats))),
            ("greedy", true),
        ])
        let localObject = JSONObject([
            ("ttft_ms", .double(local.ttftSeconds * 1000)),
            ("decode_tokens_per_s", .double(local.decodeTokensPerSecond)),
            ("tokens", .int(Int64(local.tokenCount))),
            ("finish_reason", .string(local.finishReason)),
        ])
        let pipelines: [JSONValue] = rows.map { row in
            let rounds: [JSONValue] = zip(row.runs, row.localRuns).map { run, localRun in
                .object(JSONObject([
                    ("local_ttft_ms", .double(localRun.ttftSeconds * 1000)),
                    ("local_decode_tokens_per_s", .double(localRun.decodeTokensPerSecond ?? 0)),
                    ("ttft_ms", .double(run.ttftSeconds * 1000)),
                    ("decode_tokens_per_s", .double(run.decodeTokensPerSecond)),
                    ("compute_ms_per_decode_token", .double(run.computeSecondsPerDecodeToken * 1000)),
                    ("worker_wait_ms_per_decode_token", .double(run.workerWaitSecondsPerDecodeToken * 1000)),
                    ("hop_overhead_ms", .double(run.hopOverheadSeconds * 1000)),
                ]))
            }
            let localSecondsPerToken = 1 / row.localDecodeTokensPerSecond
            return .object(JSONObject([
                ("stages", .int(Int64(row.stageCount))),
                ("hops_per_token", .int(Int64(row.stageCount + 1))),
                ("ttft_ms", .double(row.ttftSeconds * 1000)),
                ("ttft_ratio_to_local", .double(row.ttftRatio)),
                ("decode_tokens_per_s", .double(row.decodeTokensPerSecond)),
                ("decode_ratio_to_local", .double(row.decodeRatio)),
                ("local_ttft_ms", .double(row.localTTFTSeconds * 1000)),
                ("local_decode_tokens_per_s", .double(row.localDecodeTokensPerSecond)),
                ("ms_per_decode_token", .double(row.clientSecondsPerDecodeToken * 1000)),
                ("compute_ms_per_decode_token", .double(row.computeSecondsPerDecodeToken * 1000)),
                ("worker_wait_ms_per_decode_token", .double(row.workerWaitSecondsPerDecodeToken * 1000)),
                ("hop_overhead_ms", .double(row.hopOverheadSeconds * 1000)),
                (
                    "hop_overhead_vs_local_ms",
                    .double((row.clientSecondsPerDecodeToken - localSecondsPerToken) / Double(row.stageCount + 1) * 1000)
                ),
                ("tokens", .int(Int64(row.tokenCount))),
                ("finish_reason", .string(row.finishReason)),
                ("same_tokens_as_local", .bool(row.matches(local.expectedTokens))),
                ("route", .array((row.runs.first?.route ?? []).map { .string($0) })),
                ("rounds", .array(rounds)),
            ]))
        }
        var root = JSONObject([("settings", .object(settings)), ("local", .object(localObject)), ("pipelines", .array(pipelines))])
        if let three = rows.first(where: { $0.stageCount == 3 }) {
            root["target"] = .object(JSONObject([
                ("three_stage_decode_ratio_min", 0.8), ("three_stage_decode_ratio", .double(three.decodeRatio)), ("met", .bool(three.decodeRatio >= 0.8)),
            ]))
        }
        return .object(root)
    }

    private func progress(_ line: String) { printError(line) }
}

/// A failure of the benchmark itself (a request refused or unanswered).
private struct BenchFailure: Error, CustomStringConvertible {
    var description: String
}

/// A request's replies, each stamped with the monotonic time it reached the client.
private struct TimedReply {
    var publishedAt: Double
    var tokenArrivals: [Double]
    var result: ResultReply
}

/// One measured request through a pipeline.
private struct PipelineRun {
    var ttftSeconds: Double
    var decodeTokensPerSecond: Double
    var clientSecondsPerDecodeToken: Double
    var computeSecondsPerDecodeToken: Double
    /// Time steps spent inside the workers other than computing (queued, handed between threads).
    var workerWaitSecondsPerDecodeToken: Double
    var hopOverheadSeconds: Double
    var tokens: [Int32]
    var finishReason: Messages.FinishReason
    var route: [String]

    /// - Parameter prefill: timings of a max_tokens 1 request with the same prompt, whose stage
    ///   times are the prefill's share of the measured request's.
    init(stageCount: Int, measured: TimedReply, prefill: ResultReply.Timings) {
        let arrivals = measured.tokenArrivals
        let first = arrivals.first ?? measured.publishedAt
        let decodeSteps = max(1, arrivals.count - 1)
        ttftSeconds = first - measured.publishedAt
        clientSecondsPerDecodeToken = ((arrivals.last ?? first) - first) / Double(decodeSteps)
        decodeTokensPerSecond = clientSecondsPerDecodeToken > 0 ? 1 / clientSecondsPerDecodeToken : 0
        let stages = measured.result.timings.stages
        let compute = stages.map(\.computeSeconds).reduce(0, +) - prefill.stages.map(\.computeSeconds).reduce(0, +)
        let wait = stages.map(\.waitSeconds).reduce(0, +) - prefill.stages.map(\.waitSeconds).reduce(0, +)
        computeSecondsPerDecodeToken = max(0, compute) / Double(decodeSteps)
        workerWaitSecondsPerDecodeToken = max(0, wait) / Double(decodeSteps)
        hopOverheadSeconds = (clientSecondsPerDecodeToken - computeSecondsPerDecodeToken) / Double(stageCount + 1)
        tokens = measured.result.tokens
        finishReason = measured.result.finishReason
        route = measured.result.route
    }
}

/// The medians of one stage count's runs.
private struct PipelineRow {
    var stageCount: Int
    var runs: [PipelineRun]
    /// The local runs of the same rounds, which the ratios compare with.
    var localRuns: [LocalRun]

    var localTTFTSeconds: Double { median(localRuns.map(\.ttftSeconds)) }
    var localDecodeTokensPerSecond: Double { median(localRuns.compactMap(\.decodeTokensPerSecond)) }
    var ttftRatio: Double { ttftSeconds / localTTFTSeconds }
    var decodeRatio: Double { decodeTokensPerSecond / localDecodeTokensPerSecond }

    var ttftSeconds: Double { median(runs.map(\.ttftSeconds)) }
    var decodeTokensPerSecond: Double { median(runs.map(\.decodeTokensPerSecond)) }
    var clientSecondsPerDecodeToken: Double { median(runs.map(\.clientSecondsPerDecodeToken)) }
    var computeSecondsPerDecodeToken: Double { median(runs.map(\.computeSecondsPerDecodeToken)) }
    var workerWaitSecondsPerDecodeToken: Double { median(runs.map(\.workerWaitSecondsPerDecodeToken)) }
    var hopOverheadSeconds: Double { median(runs.map(\.hopOverheadSeconds)) }
    var tokenCount: Int { runs.first?.tokens.count ?? 0 }
    var finishReason: String { Set(runs.map(\.finishReason.rawValue)).sorted().joined(separator: "/") }

    func matches(_ expected: [Int32]) -> Bool { runs.allSatisfy { $0.tokens == expected } }
}

/// One in-process generation with the whole model.
private struct LocalRun: Sendable {
    var ttftSeconds: Double
    var decodeTokensPerSecond: Double?
    var tokens: [Int32]
    var finishReason: Inference.FinishReason
}

/// Every local run of the benchmark.
private struct LocalSummary {
    var runs: [LocalRun]
    /// The tokens a pipeline result should hold (no end-of-generation token: results omit it).
    var expectedTokens: [Int32]

    var ttftSeconds: Double { median(runs.map(\.ttftSeconds)) }
    var decodeTokensPerSecond: Double { median(runs.compactMap(\.decodeTokensPerSecond)) }
    /// Tokens generated, counted as a result counts them (an end-of-generation token is not one).
    var tokenCount: Int { expectedTokens.count }
    var finishReason: String { Set(runs.map(\.finishReason.rawValue)).sorted().joined(separator: "/") }
}

/// `generate --local` as a baseline: the whole model on a thread of its own, so the long
/// computation stays off Swift's cooperative pool; one executor for every run, as a worker keeps
/// its own across requests.
private final class LocalBaseline: @unchecked Sendable {
    // Sendable: `executor` is created and used only on `thread`; the other fields are immutable.
    let model: TransformerModel
    let tokenizer: Tokenizer
    let threads: Int
    private let thread = DedicatedThread(name: "bench-local")
    private var executor: BlockRangeExecutor?
    private var runs = 0

    init(model: TransformerModel, tokenizer: Tokenizer, threads: Int) {
        self.model = model
        self.tokenizer = tokenizer
        self.threads = threads
    }

    deinit { thread.close() }

    /// One greedy generation, stopping at an end-of-generation token as the scheduler does.
    func generate(promptTokens: [Int32], decodeTokens: Int) async throws -> LocalRun {
        let outcome: Result<LocalRun, any Error> = await thread.run { [self] in
            do {
                let executor = try self.executor ?? BlockRangeExecutor(model: model, options: ExecutionOptions(threads: threads))
                self.executor = executor
                runs += 1
                var arrivals: [Double] = []
                let start = Clock.monotonicSeconds()
                let result = try LocalGenerator(executor: executor, tokenizer: tokenizer).generate(
                    GenerationRequest(promptTokens: promptTokens, maxTokens: decodeTokens), cache: KVCacheID(key: "bench-local", attempt: runs)
                ) { event in
                    // An end-of-generation token is sampled but not streamed: it ends the run.
                    if case .token = event { arrivals.append(Clock.monotonicSeconds()) }
                }
                let first = arrivals.first ?? start
                let span = (arrivals.last ?? first) - first
                return .success(LocalRun(
                    ttftSeconds: first - start,
                    decodeTokensPerSecond: arrivals.count >= 2 && span > 0 ? Double(arrivals.count - 1) / span : nil,
                    tokens: result.tokens, finishReason: result.finishReason))
            } catch {
                return .failure(error)
            }
        }
        return try outcome.get()
    }

    /// `tokens` as a pipeline's result lists them: without a final end-of-generation token.
    func comparableTokens(_ tokens: [Int32]) -> [Int32] {
        if let last = tokens.last, tokenizer.isEndOfGeneration(last) { return Array(tokens.dropLast()) }
        return tokens
    }
}

private func median(_ values: [Double]) -> Double {
    guard !values.isEmpty else { return 0 }
    let sorted = values.sorted()
    let middle = sorted.count / 2
    return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

private func format(_ value: Double, digits: Int) -> String {
    value.isFinite ? String(format: "%.\(digits)f", value) : "-"
}

