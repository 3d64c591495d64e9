import ArgumentParser
import Foundation
import Inference
import JSON
import GGUF

/// `hyperion bench inference`: tokens per second of the CPU runtime, beside llama.cpp's figures.
struct BenchInferenceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inference",
        abstract: "Measure prefill, decode and batched-decode tokens/s of the model runtime.",
        discussion: """
            Prefill: the 182-token prompt of the reference fixture in one step. Decode: greedy tokens \
            one at a time after that prompt. Batched decode: B requests advanced one token each per \
            step (weights read once per step) for B = 1, 2, 4, 8, 16. Each figure is the best of --runs. \
            Ratios compare with the fixture's reference_speed (llama.cpp 0.3.36 built native, 2 \
            threads, this machine kind: 240.7 prompt tok/s, 89.8 decode tok/s) — the fixture's \
            figures, not a run on this machine. Targets: decode ≥ 0.7×, prefill ≥ 0.5× at 2 \
            threads, B=16 ≥ 4× B=1. The default build is portable x86-64 (SSE2); batches of 2 or \
            more tokens run on wide kernels (512-bit, AVX-512 VNNI) when the CPU has them — \
            HYPERION_KERNELS=portable measures without them. To measure a wider CPU throughout, \
            build with `swift build -c release -Xswiftc -target-cpu -Xswiftc znver4` (any LLVM CPU \
            name). The integer kernels give bit-identical results in every case.

            Examples:
              hyperion bench inference
              hyperion bench inference --threads 1 --output-tokens 32 --precision float32
            """
    )

    @Option(help: "GGUF model file (default: $HYPERION_MODEL, else models/SmolLM2-135M-Instruct.Q4_1.gguf).")
    var model: String?

    @Option(help: "Reference fixture (default: $HYPERION_FIXTURES/smollm2-reference.json, else fixtures/ of the repository).")
    var fixture: String?

    @Option(help: "Threads for batched decode (prefill and decode run at 1 and 2 threads).")
    var threads = 2

    @Option(help: "Decode tokens per run (the fixture's figure used 64).")
    var outputTokens = 64

    /// The old spelling of --output-tokens, kept hidden for one release.
    @Option(name: .customLong("decode-tokens"), help: .hidden)
    var oldDecodeTokens: Int?

    @Option(help: "Decode steps per batched-decode run.")
    var batchSteps = 32

    @Option(help: "Runs per figure (the best is printed).")
    var runs = 3

    @Option(help: "Activation precision in products: int8 or float32.")
    var precision = "int8"

    mutating func validate() throws {
        if let oldDecodeTokens { outputTokens = oldDecodeTokens }
        guard threads >= 1, outputTokens >= 1, batchSteps >= 1, runs >= 1 else {
            throw ValidationError("--threads, --output-tokens, --batch-steps and --runs must be ≥ 1")
        }
        guard ActivationPrecision(rawValue: precision) != nil else {
            throw ValidationError("--precision must be int8 or float32, got \(precision)")
        }
    }

    func run() throws {
        let path = ModelLocation.resolve(model)
        let file: GGUFFile
        do {
            file = try GGUFFile(path: path)
        } catch {
            throw BenchInferenceFailure("cannot open the model at \(path): \(error)\(ModelLocation.hint(model))")
        }
        let transformer = try TransformerModel(file: file)
        let reference = try loadFixture()
        let prompt = reference.prompt
        let activationPrecision = ActivationPrecision(rawValue: precision) ?? .int8
        print("model \(path): \(transformer.config.architecture.rawValue), \(transformer.config.blockCount) blocks")
        print("precision \(activationPrecision.rawValue); \(ProcessInfo.processInfo.activeProcessorCount) cores; best of \(runs) runs")
        switch KernelSet.best {
        case .wide: print("kernels: wide (AVX-512 VNNI) for batches of 2+ tokens, portable otherwise")
        case .portable:
            let reason = WideKernelSupport.available
                ? "HYPERION_KERNELS=portable" : "CPU lacks \(WideKernelSupport.missingFlags.joined(separator: " "))"
            print("kernels: portable (\(reason))")
        }
        print("reference: the fixture's reference_speed (llama.cpp, 2 threads, this machine kind), not measured here")
        print("")

        for threadCount in [1, 2] {
            let executor = try BlockRangeExecutor(
                model: transformer, options: ExecutionOptions(threads: threadCount, precision: activationPrecision))
            var prefill = 0.0
            var decode = 0.0
            for attempt in 0..<runs {
                let id = KVCacheID(key: "bench", attempt: attempt)
                let start = ContinuousClock.now
                var logits = try executor.run(Step(cache: id, startPosition: 0, input: .tokens(prompt)))
                let prefilled = ContinuousClock.now
                for i in 0..<outputTokens {
                    let next = Sampler.sample(logits.row(0), parameters: .greedy, position: prompt.count + i).token
                    logits = try executor.run(Step(cache: id, startPosition: prompt.count + i, input: .tokens([next])))
                }
                let done = ContinuousClock.now
                executor.release(id)
                prefill = max(prefill, Double(prompt.count) / seconds(prefilled - start))
                decode = max(decode, Double(outputTokens) / seconds(done - prefilled))
            }
            print(
                line(
                    "prefill \(prompt.count) tokens, \(threadCount) thread\(threadCount == 1 ? "" : "s")", prefill,
                    reference: threadCount == 2 ? reference.prefillTokensPerSecond : nil, target: 0.5))
            print(
                line(
                    "decode \(outputTokens) tokens, \(threadCount) thread\(threadCount == 1 ? "" : "s")", decode,
                    reference: threadCount == 2 ? reference.decodeTokensPerSecond : nil, target: 0.7))
        }

        let executor = try BlockRangeExecutor(
            model: transformer, options: ExecutionOptions(threads: threads, precision: activationPrecision))
        let context = Array(prompt.prefix(32))
        var single = 0.0
        for batch in [1, 2, 4, 8, 16] {
            var best = 0.0
            for attempt in 0..<runs {
                let ids = (0..<batch).map { KVCacheID(key: "batch-\($0)", attempt: attempt) }
                var next: [Int32] = []
                for id in ids {
                    let logits = try executor.run(Step(cache: id, startPosition: 0, input: .tokens(context)))
                    next.append(Sampler.sample(logits.row(0), parameters: .greedy, position: context.count).token)
                }
                let start = ContinuousClock.now
                for step in 0..<batchSteps {
                    let steps = zip(ids, next).map { id, token in
                        Step(cache: id, startPosition: context.count + step, input: .tokens([token]))
                    }
                    let outputs = try executor.run(batch: steps)
                    next = outputs.map {
                        Sampler.sample($0.row(0), parameters: .greedy, position: context.count + step + 1).token
                    }
                }
                let elapsed = seconds(ContinuousClock.now - start)
                for id in ids { executor.release(id) }
                best = max(best, Double(batch * batchSteps) / elapsed)
            }
            if batch == 1 { single = best }
            let ratio = batch == 1 ? "" : String(format: "  %.2f× B=1%@", best / single, batch == 16 ? " (target ≥ 4×)" : "")
            print(String(format: "%-40@ %8.1f tok/s", "batched decode B=\(batch), \(threads) threads" as NSString, best) + ratio)
        }
    }

    private func line(_ label: String, _ tokensPerSecond: Double, reference: Double?, target: Double) -> String {
        var text = String(format: "%-40@ %8.1f tok/s", label as NSString, tokensPerSecond)
        if let reference, reference > 0 {
            text += String(
                format: "  %.2f× llama.cpp's %.1f (fixture; target ≥ %.1f×)", tokensPerSecond / reference, reference, target)
        }
        return text
    }

    private func seconds(_ d: Duration) -> Double {
        let (s, atto) = d.components
        return Double(s) + Double(atto) * 1e-18
    }

    private struct Reference {
        let prompt: [Int32]
        let prefillTokensPerSecond: Double
        let decodeTokensPerSecond: Double
    }

    private func loadFixture() throws -> Reference {
        let candidates = [
            fixture,
            ProcessInfo.processInfo.environment["HYPERION_FIXTURES"].map { $0 + "/smollm2-reference.json" },
            "fixtures/smollm2-reference.json",
        ].compactMap { $0 }
        guard let path = candidates.first(where: { FileManager.default.fileExists(atPath: $0) }) else {
            throw BenchInferenceFailure("no reference fixture found (tried \(candidates.joined(separator: ", "))); pass --fixture")
        }
        let root = try JSONValue.parse(String(contentsOfFile: path, encoding: .utf8))
        let tokens = root["prompts"]?["plain_long_history"]?["prompt_tokens"]?.arrayValue?.compactMap(\.intValue) ?? []
        guard !tokens.isEmpty else {
            throw BenchInferenceFailure("\(path): prompts.plain_long_history.prompt_tokens is missing")
        }
        return Reference(
            prompt: tokens.map { Int32($0) },
            prefillTokensPerSecond: root["reference_speed"]?["prompt_tokens_per_s"]?.doubleValue ?? 0,
            decodeTokensPerSecond: root["reference_speed"]?["decode_tokens_per_s"]?.doubleValue ?? 0)
    }
}

/// A failure while running (not a usage mistake), printed without the usage text.
private struct BenchInferenceFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
