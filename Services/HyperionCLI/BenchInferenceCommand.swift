import ArgumentParser
import Foundation
import Inference
import JSON
import Measurement
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
            Ratios compare with the fixture's reference_speed (llama.cpp's own llama-bench, 2 \
            threads, on an AVX-512 machine) — the fixture's figures, not a run on this machine; \
            compare with llama.cpp run on the same machine for a fair ratio. Targets: decode ≥ 0.7×, prefill ≥ 0.5× at 2 \
            threads, B=16 ≥ 4× B=1. The default build is portable x86-64 (SSE2); the quantized \
            products run on wide kernels — avx512 (512-bit, AVX-512 VNNI) or avx2 (256-bit) — \
            when the CPU has them. HYPERION_KERNELS=portable|avx2|avx512 picks a narrower set; \
            --compare-kernels measures each set the CPU runs; --products times the quantized \
            products alone per matrix and token count on every set (where each kernel wins); \
            --llama-bench DIR runs llama.cpp's own tools on the same model in the same command, \
            alternating. To measure a wider CPU throughout, \
            build with `swift build -c release -Xswiftc -target-cpu -Xswiftc znver4` (any LLVM CPU \
            name). The integer kernels give bit-identical results in every case.

            Examples:
              hyperion bench inference
              hyperion bench inference --threads 1 --output-tokens 32 --precision float32
              hyperion bench inference --compare-kernels --runs 5
              hyperion bench inference --products
              hyperion bench inference --llama-bench ~/llama.cpp/build/bin --runs 5
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

    @Flag(help: "Measure every kernel set this CPU runs (portable, avx2, avx512) in turn, with ratios to portable.")
    var compareKernels = false

    @Flag(
        help: "Time the quantized products alone instead: the model's own matrices (first block and output), 1–8, 12 and 16 tokens, every kernel set this CPU runs, one thread, fastest of --runs × 20 calls, with the kernel each set runs and ratios to portable.")
    var products = false

    @Option(
        help: ArgumentHelp(
            "Directory of llama.cpp's llama-bench and llama-batched-bench (or its bin/): run them on the same model, alternating run by run, and print medians and ratios.",
            valueName: "dir"))
    var llamaBench: String?

    mutating func validate() throws {
        if let oldDecodeTokens { outputTokens = oldDecodeTokens }
        guard threads >= 1, outputTokens >= 1, batchSteps >= 1, runs >= 1 else {
            throw ValidationError("--threads, --output-tokens, --batch-steps and --runs must be ≥ 1")
        }
        guard ActivationPrecision(rawValue: precision) != nil else {
            throw ValidationError("--precision must be int8 or float32, got \(precision)")
        }
        if products && (compareKernels || llamaBench != nil) {
            throw ValidationError("--products times the products alone on every kernel set: without --compare-kernels or --llama-bench")
        }
        if compareKernels && llamaBench != nil {
            throw ValidationError("--compare-kernels and --llama-bench: choose one (each alternates its own runs)")
        }
        if let llamaBench {
            do { _ = try LlamaBenchRunner(directory: llamaBench) } catch { throw ValidationError("\(error)") }
        }
    }

    /// `--products`: one line per matrix and token count, as it is measured.
    func timeProducts(_ transformer: TransformerModel, path: String) {
        let sets = KernelSet.supported
        print("model \(path): quantized products alone, one thread, fastest of \(runs * 20) calls, sets alternating call by call")
        print("kernels: \(KernelSet.best.summary)\(kernelNote())")
        print("µs per token (the kernel that ran), ratio to portable\n")
        func pad(_ text: String, _ width: Int) -> String { text.padding(toLength: max(width, text.count + 1), withPad: " ", startingAt: 0) }
        print(pad("matrix", 26) + pad("format", 7) + pad("rows×cols", 12) + pad("tokens", 7) + sets.map { pad($0.rawValue, 30) }.joined())
        ProductTiming.measure(model: transformer, tokens: [1, 2, 3, 4, 5, 6, 7, 8, 12, 16], sets: sets, calls: runs * 20) { m in
            let portable = m.results.first { $0.kernels == .portable }?.seconds
            var line = pad(m.matrix, 26) + pad(m.format, 7) + pad("\(m.rows)×\(m.columns)", 12) + pad("\(m.tokens)", 7)
            for r in m.results {
                let perToken = r.seconds * 1e6 / Double(m.tokens)
                var cell = String(format: "%.1f (%@)", perToken, r.path as NSString)
                if let portable, r.kernels != .portable { cell += String(format: " %.2f×", portable / r.seconds) }
                line += pad(cell, 30)
            }
            print(line)
        }
    }

    func run() throws {
        let llama = try llamaBench.map { try LlamaBenchRunner(directory: $0) }
        let path = ModelLocation.resolve(model)
        let file: GGUFFile
        do {
            file = try GGUFFile(path: path)
        } catch {
            throw BenchInferenceFailure("cannot open the model at \(path): \(error)\(ModelLocation.hint(model))")
        }
        let transformer = try TransformerModel(file: file)
        if products {
            timeProducts(transformer, path: path)
            return
        }
        let reference = try loadFixture()
        let prompt = reference.prompt
        let activationPrecision = ActivationPrecision(rawValue: precision) ?? .int8
        print("model \(path): \(transformer.config.architecture.rawValue), \(transformer.config.blockCount) blocks")
        print("precision \(activationPrecision.rawValue); \(ProcessInfo.processInfo.activeProcessorCount) cores; best of \(runs) runs")
        let sets = compareKernels ? KernelSet.supported : [KernelSet.best]
        print("kernels: \(KernelSet.best.summary)\(kernelNote())")
        print("reference: the fixture's reference_speed (llama.cpp's llama-bench, 2 threads, an AVX-512 VNNI machine), not measured here")
        if let llama {
            try compareWithLlama(llama, transformer, path: path, prompt: prompt, reference: reference, precision: activationPrecision)
            return
        }
        var figures: [KernelSet: [(String, Double)]] = [:]
        if compareKernels {
            // Sets alternate run by run, so a machine whose speed drifts favours none of them;
            // each figure is the best of its runs.
            for run in 1...runs {
                for set in sets {
                    print("\n== kernels \(set.rawValue), run \(run) of \(runs)")
                    let measured = try measure(
                        transformer, prompt: prompt, reference: reference, precision: activationPrecision, kernels: set, runs: 1)
                    figures[set] = figures[set].map { zip($0, measured).map { ($0.0, max($0.1, $1.1)) } } ?? measured
                }
            }
        } else {
            print("")
            figures[KernelSet.best] = try measure(
                transformer, prompt: prompt, reference: reference, precision: activationPrecision, kernels: KernelSet.best, runs: runs)
        }
        if compareKernels, let base = figures[.portable] {
            print("\nbest of \(runs) runs per set, against portable, measured in this process:")
            for set in sets where set != .portable {
                for ((label, value), (_, portable)) in zip(figures[set] ?? [], base) where portable > 0 {
                    print(String(format: "  %-8@ %-40@ %8.1f vs %8.1f tok/s  %.2f×", set.rawValue as NSString, label as NSString, value, portable, value / portable))
                }
            }
        }
    }

    /// Hyperion and llama.cpp alternately, `runs` times each; the median of each figure and their ratio.
    private func compareWithLlama(
        _ llama: LlamaBenchRunner, _ transformer: TransformerModel, path: String, prompt: [Int32], reference: Reference,
        precision: ActivationPrecision
    ) throws {
        print("cpu: \(Self.cpuModel()); llama.cpp: \(llama.bench.deletingLastPathComponent().path)")
        var ours: [String: [Double]] = [:]
        var theirs: [String: [Double]] = [:]
        var labels: [String] = []
        for run in 1...runs {
            print("\n== run \(run) of \(runs): hyperion")
            let measured = try measure(transformer, prompt: prompt, reference: reference, precision: precision, kernels: KernelSet.best, runs: 1)
            if labels.isEmpty { labels = measured.map(\.0) }
            for (label, value) in measured { ours[label, default: []].append(value) }
            print("== run \(run) of \(runs): llama.cpp")
            let figures = try llama.measure(
                model: path, promptTokens: prompt.count, outputTokens: outputTokens, batchSteps: batchSteps,
                batchThreads: threads, batches: Self.batches)
            for label in labels {
                guard let value = figures[label] else { continue }
                theirs[label, default: []].append(value)
                print(String(format: "%-40@ %8.1f tok/s", label as NSString, value))
            }
        }
        print("\nmedian of \(runs) alternating runs (nearest rank), hyperion (kernels \(KernelSet.best.rawValue)) vs llama.cpp on this machine:")
        for label in labels {
            let mine = Percentile.of(ours[label] ?? [], 0.5)
            guard let other = theirs[label], !other.isEmpty else {
                print(String(format: "  %-40@ %8.1f tok/s  (llama.cpp gave no figure)", label as NSString, mine))
                continue
            }
            let median = Percentile.of(other, 0.5)
            print(String(format: "  %-40@ %8.1f vs %8.1f tok/s  %.2f×", label as NSString, mine, median, mine / median))
        }
    }

    static let batches = [1, 2, 4, 8, 16]

    /// The CPU's model name from /proc/cpuinfo.
    static func cpuModel() -> String {
        let info = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let line = info.split(separator: "\n").first { $0.hasPrefix("model name") }
        return line?.split(separator: ":", maxSplits: 1).last?.trimmingCharacters(in: .whitespaces) ?? "unknown"
    }

    /// Why the kernels are what they are, when a wider set exists that does not run.
    private func kernelNote() -> String {
        var notes: [String] = []
        if let unknown = KernelSet.unknownEnvironmentValue {
            notes.append("HYPERION_KERNELS=\(unknown) names no kernel set (portable, avx2, avx512): ignored")
        } else if let asked = ProcessInfo.processInfo.environment["HYPERION_KERNELS"] {
            notes.append("HYPERION_KERNELS=\(asked)")
        }
        if let wider = KernelSet.allCases.first(where: { $0 > KernelSet.best && !$0.missingFlags.isEmpty }) {
            notes.append("\(wider.rawValue) would need \(wider.missingFlags.joined(separator: " "))")
        }
        return notes.isEmpty ? "" : "; " + notes.joined(separator: "; ")
    }

    /// Prefill and decode at 1 and 2 threads, then batched decode; prints each figure and returns them.
    private func measure(
        _ transformer: TransformerModel, prompt: [Int32], reference: Reference, precision activationPrecision: ActivationPrecision,
        kernels: KernelSet, runs: Int
    ) throws -> [(String, Double)] {
        var figures: [(String, Double)] = []
        for threadCount in [1, 2] {
            let executor = try BlockRangeExecutor(
                model: transformer, options: ExecutionOptions(threads: threadCount, precision: activationPrecision, kernels: kernels))
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
            let threadsLabel = "\(threadCount) thread\(threadCount == 1 ? "" : "s")"
            let prefillLabel = "prefill \(prompt.count) tokens, \(threadsLabel)"
            let decodeLabel = "decode \(outputTokens) tokens, \(threadsLabel)"
            figures += [(prefillLabel, prefill), (decodeLabel, decode)]
            print(line(prefillLabel, prefill, reference: threadCount == 2 ? reference.prefillTokensPerSecond : nil, target: 0.5))
            print(line(decodeLabel, decode, reference: threadCount == 2 ? reference.decodeTokensPerSecond : nil, target: 0.7))
        }

        let executor = try BlockRangeExecutor(
            model: transformer, options: ExecutionOptions(threads: threads, precision: activationPrecision, kernels: kernels))
        let context = Array(prompt.prefix(32))
        var single = 0.0
        for batch in Self.batches {
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
            let label = "batched decode B=\(batch), \(threads) threads"
            figures.append((label, best))
            let ratio = batch == 1 ? "" : String(format: "  %.2f× B=1%@", best / single, batch == 16 ? " (target ≥ 4×)" : "")
            print(String(format: "%-40@ %8.1f tok/s", label as NSString, best) + ratio)
        }
        return figures
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
