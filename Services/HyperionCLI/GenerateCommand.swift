import ArgumentParser
import Foundation
import Inference
import JSON
import Messages
import ServiceSupport
import GGUF

/// `hyperion generate`: through a running Hyperion (the request goes onto `hyperion.ingress`),
/// or with `--local` the whole model in this process — the reference a pipelined run must match
/// token for token.
struct GenerateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Generate text from a prompt.",
        discussion: """
            By default the request goes through the running system: it is published onto \
            hyperion.ingress (broker from --amqp-url, HYPERION_AMQP_URL or .run/amqp_url), the tokens \
            are printed as they stream back, then the route and per-stage timings. --json prints the \
            result object instead (text, tokens, finish_reason, usage, route, plan_version, attempts, \
            timings). A broker with TLS takes an amqps:// URL with its certificates in the query: \
            amqps://client:PASS@host:5671/%2F?cacertfile=ca.pem[&certfile=client.pem&keyfile=client.key]. \
            Ctrl-C or --timeout-seconds cancels the request in the system (and it is sent as its \
            deadline), so no stage worker keeps decoding for nobody. The exit status says what went \
            wrong: 2 bad input (a flag, the URL, a prompt the system refuses as too long), 69 no \
            broker or no Hyperion services on it, 75 overloaded (the request queue is full; try \
            again later), 77 login refused, 124 timed out, 130 interrupted, 1 anything else.

            With --local, runs every block of the model in this process (no broker) and streams the \
            text to standard output; --json prints the same result object as through the broker, \
            with route ["local"]. The same seed, sampling parameters and prompt always give the same tokens, in \
            this process or through a pipeline of stage workers.

            Examples:
              hyperion generate --chat "What is the capital of France?"
              hyperion generate --local --max-tokens 32 "The capital of France is"
            """
    )

    @Flag(help: "Run the whole model in this process (no broker).")
    var local = false

    @OptionGroup
    var broker: BrokerOptions

    @Option(parsing: .unconditional, help: "Seconds to wait for the result, without --local; then the request is cancelled.")
    var timeoutSeconds = 600.0

    @Option(help: ArgumentHelp("Also write the result object (JSON) to this file, without --local; tokens still stream.", valueName: "file.json"))
    var output: String?

    /// Old spellings of --timeout-seconds and --output, kept hidden for one release.
    @Option(name: .customLong("timeout"), parsing: .unconditional, help: .hidden)
    var oldTimeout: Double?
    @Option(name: .customLong("save-result"), help: .hidden)
    var oldSaveResult: String?

    @Option(help: "GGUF model file, with --local (default: $HYPERION_MODEL, else models/SmolLM2-135M-Instruct.Q4_1.gguf).")
    var model: String?

    // Numeric options parse their value unconditionally, so "-5" reaches the range check below
    // instead of being read as a flag.
    @Option(parsing: .unconditional, help: "Most tokens to generate (≥ 1).")
    var maxTokens = 128

    @Option(parsing: .unconditional, help: "Sampling temperature; 0 is greedy.")
    var temperature = 0.0

    @Option(parsing: .unconditional, help: "Nucleus sampling: keep the most likely tokens up to this probability mass.")
    var topP = 1.0

    @Option(parsing: .unconditional, help: "Keep only the K most likely tokens (0 keeps all).")
    var topK = 0

    @Option(parsing: .unconditional, help: "Seed of the sampler's random draws.")
    var seed: UInt64 = 0

    @Flag(help: "Keep generating after an end-of-generation token.")
    var ignoreEos = false

    @Flag(help: "Wrap the prompt as one user turn of the model's chat template.")
    var chat = false

    @Flag(help: "Print one JSON object instead of streaming text.")
    var json = false

    @Option(help: "Stop when the text contains this string (repeatable).")
    var stop: [String] = []

    @Option(help: "Token ids instead of a prompt, comma-separated (e.g. 504,3458,282).")
    var tokens: String?

    @Option(parsing: .unconditional, help: "Compute threads, with --local (default: every core: one process runs the whole model).")
    var threads: Int?

    @Option(help: "Activation precision in products: int8 (fast) or float32 (closest to a float reference).")
    var precision = "int8"

    @Argument(help: "The prompt.")
    var prompt: String?

    mutating func validate() throws {
        if let oldTimeout { timeoutSeconds = oldTimeout }
        if let oldSaveResult {
            guard output == nil else { throw ValidationError("--save-result and --output: give one (--save-result is the old spelling)") }
            output = oldSaveResult
        }
        if !local {
            guard timeoutSeconds > 0, timeoutSeconds.isFinite else {
                throw ValidationError("--timeout-seconds must be > 0 seconds, got \(timeoutSeconds)")
            }
            guard !ignoreEos else { throw ValidationError("--ignore-eos is available only with --local") }
            guard threads == nil, precision == "int8" else {
                throw ValidationError("--threads and --precision set how this process computes: use them with --local")
            }
        } else if output != nil {
            throw ValidationError("--output is for requests through the broker; with --local use --json")
        } else if broker.isGiven {
            throw ValidationError("--amqp-url is for requests through the broker; --local uses no broker")
        }
        guard maxTokens >= 1 else { throw ValidationError("--max-tokens must be ≥ 1, got \(maxTokens)") }
        guard temperature >= 0 else { throw ValidationError("--temperature must be ≥ 0, got \(temperature)") }
        guard topP > 0, topP <= 1 else { throw ValidationError("--top-p must be in (0, 1], got \(topP)") }
        guard topK >= 0 else { throw ValidationError("--top-k must be ≥ 0, got \(topK)") }
        guard (prompt == nil) != (tokens == nil) else {
            throw ValidationError("give either a prompt or --tokens, not both and not neither")
        }
        if let prompt, prompt.isEmpty { throw ValidationError("the prompt is empty: give some text, or --tokens") }
        _ = try promptTokenIDs()
        guard ActivationPrecision(rawValue: precision) != nil else {
            throw ValidationError("--precision must be int8 or float32, got \(precision)")
        }
        if let threads, threads < 1 { throw ValidationError("--threads must be ≥ 1, got \(threads)") }
    }

    func run() async throws {
        if local {
            try runLocal()
        } else {
            try await runRemote()
        }
    }

    /// Through the running system, as any client would.
    private func runRemote() async throws {
        let input: InferenceRequest.Input
        if let ids = try promptTokenIDs() {
            input = .tokens(ids)
        } else if chat {
            input = .messages([ChatMessage(role: "user", content: prompt ?? "")])
        } else {
            input = .prompt(prompt ?? "")
        }
        let request = InferenceRequest(
            id: nil, input: input, maxTokens: maxTokens, temperature: temperature, topP: topP, topK: topK, seed: seed,
            stop: stop.isEmpty ? nil : stop, stream: !json)
        let client = RemoteGeneration(amqpURL: broker.amqpURL, request: request, timeoutSeconds: timeoutSeconds)
        let result: ResultReply
        do {
            result = try await client.run { token in
                FileHandle.standardOutput.write(Data(token.text.utf8))
            }
        } catch {
            if case .interrupted = error { print("") }
            printError("hyperion generate: \(error)")
            throw ExitCode(error.exitCode)
        }
        let resultJSON = (try? JSONCoding.encode(result)) ?? "{}"
        if let output {
            do {
                try (resultJSON + "\n").write(toFile: output, atomically: true, encoding: .utf8)
            } catch {
                printError("hyperion generate: cannot write --output \(output): \(error)")
                throw ExitCode.failure
            }
        }
        if json {
            print(resultJSON)
            return
        }
        print("")
        if let note = Self.contextNote(finish: result.finishReason, generated: result.usage.completionTokens, asked: maxTokens) {
            printError(note)
        }
        let stages = result.timings.stages.map { "\($0.node) \(Int($0.computeSeconds * 1000)) ms" }.joined(separator: ", ")
        printError(
            "[\(result.usage.promptTokens) prompt tokens, \(result.usage.completionTokens) generated, finish \(result.finishReason.rawValue); "
                + "route \(result.route.joined(separator: " → ")); time to first token \(Int(result.timings.timeToFirstTokenSeconds * 1000)) ms, "
                + "total \(Int(result.timings.totalSeconds * 1000)) ms; compute \(stages); attempts \(result.attempts)]")
    }

    /// The whole model in this process.
    private func runLocal() throws {
        let clock = ContinuousClock()
        let started = clock.now
        let path = ModelLocation.resolve(model)
        let file: GGUFFile
        do {
            file = try GGUFFile(path: path)
        } catch {
            throw GenerateFailure("cannot open the model at \(path): \(error)\(ModelLocation.hint(model))")
        }
        let transformer = try TransformerModel(file: file)
        let tokenizer = try Tokenizer(gguf: file)
        let options = ExecutionOptions(
            threads: threads ?? ProcessInfo.processInfo.activeProcessorCount,
            precision: ActivationPrecision(rawValue: precision) ?? .int8)
        let executor = try BlockRangeExecutor(model: transformer, options: options)

        let promptTokens: [Int32]
        if let ids = try promptTokenIDs() {
            promptTokens = ids
        } else if chat {
            promptTokens = try tokenizer.encodeChat([.user(prompt ?? "")])
        } else {
            promptTokens = tokenizer.encode(prompt ?? "")
        }

        // The same rule as the scheduler's: a prompt must leave room in the context window for one
        // token, and the output stops where the window ends.
        let contextTokens = transformer.config.contextLength
        guard promptTokens.count < contextTokens else {
            printError(
                "hyperion generate: too_long: the prompt has \(promptTokens.count) tokens; the model's context window is \(contextTokens)")
            throw ExitCode(2)
        }
        let request = GenerationRequest(
            promptTokens: promptTokens, maxTokens: min(maxTokens, contextTokens - promptTokens.count),
            sampling: SamplingParameters(temperature: temperature, topK: topK, topP: topP, seed: seed),
            stopAtEndOfGeneration: !ignoreEos, stopStrings: stop)
        let loaded = clock.now
        var prefilled = loaded
        let streaming = !json
        let result = try LocalGenerator(executor: executor, tokenizer: tokenizer).generate(request) { event in
            switch event {
            case .prefilled:
                prefilled = clock.now
            case .token(_, let text), .trailingText(let text):
                if streaming {
                    FileHandle.standardOutput.write(Data(text.utf8))
                }
            }
        }
        let finished = clock.now

        let prefillSeconds = (prefilled - loaded).seconds
        let decodeSeconds = (finished - prefilled).seconds
        if json {
            // The result object of a request through the broker, so one reader serves both: one
            // stage named "local", loading the model counted as queueing.
            let reply = ResultReply(
                id: "local", text: result.text, tokens: result.tokens,
                finishReason: Messages.FinishReason(rawValue: result.finishReason.rawValue) ?? .length,
                usage: .init(promptTokens: promptTokens.count, completionTokens: result.tokens.count),
                route: ["local"], planVersion: 0, attempts: 1,
                timings: .init(
                    queueSeconds: (loaded - started).seconds, timeToFirstTokenSeconds: (prefilled - started).seconds,
                    totalSeconds: (finished - started).seconds,
                    stages: [StageTiming(node: "local", computeSeconds: prefillSeconds + decodeSeconds, waitSeconds: 0)]))
            print(try JSONCoding.encode(reply))
        } else {
            print("")
            if let note = Self.contextNote(finish: result.finishReason == .length ? .length : .stop, generated: result.tokens.count, asked: maxTokens) {
                printError(note)
            }
            FileHandle.standardError.write(
                Data(
                    String(
                        format: "[%d prompt tokens, %d generated, finish %@; prefill %.1f tok/s, decode %.1f tok/s]\n",
                        promptTokens.count, result.tokens.count, result.finishReason.rawValue,
                        Double(promptTokens.count) / max(prefillSeconds, 1e-9),
                        Double(result.tokens.count) / max(decodeSeconds, 1e-9)
                    ).utf8))
        }
    }
}

extension GenerateCommand {
    /// `--tokens` as ids, or nil without it; a field that is not an id is a usage error.
    fileprivate func promptTokenIDs() throws -> [Int32]? {
        guard let tokens else { return nil }
        let ids = try tokens.split(separator: ",", omittingEmptySubsequences: false).map { field in
            guard let id = Int32(field.trimmingCharacters(in: .whitespaces)), id >= 0 else {
                throw ValidationError("--tokens: \"\(field)\" is not a token id (comma-separated numbers ≥ 0, e.g. 504,3458,282)")
            }
            return id
        }
        return ids
    }

    /// Says so when the context window, not --max-tokens, ended the output: fewer tokens than asked
    /// with finish "length" means the window was full.
    static func contextNote(finish: Messages.FinishReason, generated: Int, asked: Int) -> String? {
        guard finish == .length, generated < asked else { return nil }
        return "(stopped after \(generated) of \(asked) tokens: the prompt and output filled the model's context window)"
    }
}

/// Where commands find the model file when `--model` is not given.
enum ModelLocation {
    static let defaultRelativePath = "models/SmolLM2-135M-Instruct.Q4_1.gguf"

    /// `--model`, else `$HYPERION_MODEL`, else the default path under the current directory.
    static func resolve(_ option: String?) -> String {
        option ?? ProcessInfo.processInfo.environment["HYPERION_MODEL"] ?? defaultRelativePath
    }

    /// What to do about a model that cannot be opened: where it came from decides the advice.
    static func hint(_ option: String?) -> String {
        if option != nil { return "\n(check the --model path: a GGUF file such as \(defaultRelativePath))" }
        if ProcessInfo.processInfo.environment["HYPERION_MODEL"] != nil { return "\n(check HYPERION_MODEL, or pass --model)" }
        return "\n(run scripts/fetch-model, or pass --model)"
    }
}

extension Duration {
    /// The duration in seconds as a double.
    fileprivate var seconds: Double {
        let (s, attoseconds) = components
        return Double(s) + Double(attoseconds) * 1e-18
    }
}

/// A failure while running (not a usage mistake), printed without the usage text.
private struct GenerateFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
