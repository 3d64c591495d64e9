import ArgumentParser
import Foundation
import Inference
import JSON
import Messages
import ServiceSupport

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
            When the request queue is full the broker refuses the request and generate exits 75 \
            ("system overloaded"; try again later).

            With --local, runs every block of the model in this process (no broker) and streams the \
            text to standard output; --json prints prompt_tokens, tokens, text, finish_reason and \
            timings. The same seed, sampling parameters and prompt always give the same tokens, in \
            this process or through a pipeline of stage workers.

            Examples:
              hyperion generate --chat "What is the capital of France?"
              hyperion generate --local --max-tokens 32 "The capital of France is"
            """
    )

    @Flag(help: "Run the whole model in this process (no broker).")
    var local = false

    @Option(help: "Broker URL, without --local (default: HYPERION_AMQP_URL, else .run/amqp_url, else a local broker).")
    var amqpURL: String?

    @Option(help: "Seconds to wait for the result, without --local.")
    var timeout = 600.0

    @Option(help: "Also write the result object (JSON) to this file, without --local; tokens still stream.")
    var saveResult: String?

    @Option(help: "GGUF model file, with --local (default: $HYPERION_MODEL, else models/SmolLM2-135M-Instruct.Q4_1.gguf).")
    var model: String?

    @Option(help: "Most tokens to generate.")
    var maxTokens = 128

    @Option(help: "Sampling temperature; 0 is greedy.")
    var temperature = 0.0

    @Option(help: "Nucleus sampling: keep the most likely tokens up to this probability mass.")
    var topP = 1.0

    @Option(help: "Keep only the K most likely tokens (0 keeps all).")
    var topK = 0

    @Option(help: "Seed of the sampler's random draws.")
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

    @Option(help: "Compute threads (default: every core).")
    var threads: Int?

    @Option(help: "Activation precision in products: int8 (fast) or float32 (closest to a float reference).")
    var precision = "int8"

    @Argument(help: "The prompt.")
    var prompt: String?

    func validate() throws {
        if !local {
            guard maxTokens >= 1 else { throw ValidationError("--max-tokens must be ≥ 1 through the broker, got \(maxTokens)") }
            guard !ignoreEos else { throw ValidationError("--ignore-eos is available only with --local") }
            guard threads == nil, precision == "int8" else {
                throw ValidationError("--threads and --precision set how this process computes: use them with --local")
            }
        } else if saveResult != nil {
            throw ValidationError("--save-result is for requests through the broker; with --local use --json")
        }
        guard maxTokens >= 0 else { throw ValidationError("--max-tokens must be ≥ 0, got \(maxTokens)") }
        guard temperature >= 0 else { throw ValidationError("--temperature must be ≥ 0, got \(temperature)") }
        guard topP > 0, topP <= 1 else { throw ValidationError("--top-p must be in (0, 1], got \(topP)") }
        guard topK >= 0 else { throw ValidationError("--top-k must be ≥ 0, got \(topK)") }
        guard (prompt == nil) != (tokens == nil) else {
            throw ValidationError("give either a prompt or --tokens, not both and not neither")
        }
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
        if let tokens {
            input = .tokens(try tokens.split(separator: ",").map { field in
                guard let id = Int32(field.trimmingCharacters(in: .whitespaces)) else {
                    throw ValidationError("--tokens: \"\(field)\" is not a token id")
                }
                return id
            })
        } else if chat {
            input = .messages([ChatMessage(role: "user", content: prompt ?? "")])
        } else {
            input = .prompt(prompt ?? "")
        }
        let request = InferenceRequest(
            id: nil, input: input, maxTokens: maxTokens, temperature: temperature, topP: topP, topK: topK, seed: seed,
            stop: stop.isEmpty ? nil : stop, stream: !json)
        let client = RemoteGeneration(amqpURL: amqpURL ?? ProcessEnvironment.amqpURL(), request: request, timeoutSeconds: timeout)
        let result: ResultReply
        do {
            result = try await client.run { token in
                FileHandle.standardOutput.write(Data(token.text.utf8))
            }
        } catch .overloaded {
            printError("hyperion generate: \(RemoteGeneration.Failure.overloaded)")
            throw ExitCode(RemoteGeneration.overloadedExitCode)
        } catch {
            printError("hyperion generate: \(error)")
            throw ExitCode.failure
        }
        let resultJSON = (try? JSONCoding.encode(result)) ?? "{}"
        if let saveResult {
            do {
                try (resultJSON + "\n").write(toFile: saveResult, atomically: true, encoding: .utf8)
            } catch {
                printError("hyperion generate: cannot write --save-result \(saveResult): \(error)")
                throw ExitCode.failure
            }
        }
        if json {
            print(resultJSON)
            return
        }
        print("")
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
            throw GenerateFailure("cannot open the model at \(path): \(error)\n(run scripts/fetch-model, or pass --model)")
        }
        let transformer = try TransformerModel(file: file)
        let tokenizer = try Tokenizer(gguf: file)
        let options = ExecutionOptions(
            threads: threads ?? ProcessInfo.processInfo.activeProcessorCount,
            precision: ActivationPrecision(rawValue: precision) ?? .int8)
        let executor = try BlockRangeExecutor(model: transformer, options: options)

        let promptTokens: [Int32]
        if let tokens {
            promptTokens = try tokens.split(separator: ",").map { field in
                guard let id = Int32(field.trimmingCharacters(in: .whitespaces)) else {
                    throw GenerateFailure("--tokens: \"\(field)\" is not a token id")
                }
                return id
            }
        } else if chat {
            promptTokens = try tokenizer.encodeChat([.user(prompt ?? "")])
        } else {
            promptTokens = tokenizer.encode(prompt ?? "")
        }

        let request = GenerationRequest(
            promptTokens: promptTokens, maxTokens: maxTokens,
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
            let timings = JSONObject([
                ("load_s", .double((loaded - started).seconds)),
                ("prefill_s", .double(prefillSeconds)),
                ("decode_s", .double(decodeSeconds)),
                ("prefill_tokens_per_s", .double(Double(promptTokens.count) / max(prefillSeconds, 1e-9))),
                ("decode_tokens_per_s", .double(Double(result.tokens.count) / max(decodeSeconds, 1e-9))),
            ])
            let object = JSONObject([
                ("prompt_tokens", .array(promptTokens.map { .int(Int64($0)) })),
                ("tokens", .array(result.tokens.map { .int(Int64($0)) })),
                ("text", .string(result.text)),
                ("finish_reason", .string(result.finishReason.rawValue)),
                ("timings", .object(timings)),
            ])
            print(JSONValue.object(object).serialized())
        } else {
            print("")
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

/// Where commands find the model file when `--model` is not given.
enum ModelLocation {
    static let defaultRelativePath = "models/SmolLM2-135M-Instruct.Q4_1.gguf"

    /// `--model`, else `$HYPERION_MODEL`, else the default path under the current directory.
    static func resolve(_ option: String?) -> String {
        option ?? ProcessInfo.processInfo.environment["HYPERION_MODEL"] ?? defaultRelativePath
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
