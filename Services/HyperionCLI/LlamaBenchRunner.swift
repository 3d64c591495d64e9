import Foundation
import JSON

/// llama.cpp's own benchmark tools (`llama-bench`, `llama-batched-bench`) run on the same model
/// file, so that `hyperion bench inference --llama-bench DIR` compares with llama.cpp measured on
/// this machine, in the same command, instead of with recorded figures.
///
/// Each call measures the same figures `bench inference` prints, labelled the same way: prefill of
/// the prompt (depth 0), decode of `outputTokens` after a context of the prompt's length, and
/// batched decode of `batchSteps` steps after 32-token prompts for each batch size.
struct LlamaBenchRunner {
    let bench: URL
    let batchedBench: URL

    /// Finds both tools in `directory` or its `bin/`.
    init(directory: String) throws {
        let base = URL(fileURLWithPath: directory)
        for candidate in [base, base.appendingPathComponent("bin")] {
            let bench = candidate.appendingPathComponent("llama-bench")
            let batched = candidate.appendingPathComponent("llama-batched-bench")
            if FileManager.default.isExecutableFile(atPath: bench.path),
               FileManager.default.isExecutableFile(atPath: batched.path) {
                self.bench = bench
                self.batchedBench = batched
                return
            }
        }
        throw LlamaBenchFailure(
            "--llama-bench \(directory): no executable llama-bench and llama-batched-bench there or in its bin/ "
                + "(build llama.cpp's tools: cmake -DGGML_NATIVE=ON, targets llama-bench and llama-batched-bench)")
    }

    /// One measurement of every figure, as `label → tokens/s`.
    func measure(
        model: String, promptTokens: Int, outputTokens: Int, batchSteps: Int, batchThreads: Int, batches: [Int]
    ) throws -> [String: Double] {
        var figures: [String: Double] = [:]
        let threads = ["-t", "1,2", "-r", "1", "-o", "jsonl"]
        for line in try run(bench, ["-m", model, "-p", "\(promptTokens)", "-n", "0"] + threads) {
            guard let t = line["n_threads"]?.intValue.map(Int.init), let speed = line["avg_ts"]?.doubleValue else { continue }
            figures["prefill \(promptTokens) tokens, \(Self.threadsLabel(t))"] = speed
        }
        for line in try run(bench, ["-m", model, "-p", "0", "-n", "\(outputTokens)", "-d", "\(promptTokens)"] + threads) {
            guard let t = line["n_threads"]?.intValue.map(Int.init), let speed = line["avg_ts"]?.doubleValue else { continue }
            figures["decode \(outputTokens) tokens, \(Self.threadsLabel(t))"] = speed
        }
        let batched = [
            "-m", model, "-c", "\((32 + batchSteps) * (batches.max() ?? 1) + 64)", "-b", "2048", "-ub", "512",
            "-npp", "32", "-ntg", "\(batchSteps)", "-npl", batches.map(String.init).joined(separator: ","),
            "-t", "\(batchThreads)", "-tb", "\(batchThreads)", "--output-format", "jsonl",
        ]
        for line in try run(batchedBench, batched) {
            guard let b = line["pl"]?.intValue.map(Int.init), let speed = line["speed_tg"]?.doubleValue else { continue }
            figures["batched decode B=\(b), \(batchThreads) threads"] = speed
        }
        return figures
    }

    static func threadsLabel(_ t: Int) -> String { "\(t) thread\(t == 1 ? "" : "s")" }

    /// Runs a tool and returns the JSON objects it printed, one per line of standard output.
    private func run(_ tool: URL, _ arguments: [String]) throws -> [JSONValue] {
        let process = Process()
        process.executableURL = tool
        process.arguments = arguments
        let output = Pipe()
        // Standard error (the tools' loading log) goes to a file: a full pipe nobody reads
        // would block the tool.
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("llama-bench-\(ProcessInfo.processInfo.processIdentifier).log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: log) }
        let logHandle = try FileHandle(forWritingTo: log)
        process.standardOutput = output
        process.standardError = logHandle
        try process.run()
        let stdout = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        try? logHandle.close()
        let stderr = (try? Data(contentsOf: log)) ?? Data()
        guard process.terminationStatus == 0 else {
            let tail = String(decoding: stderr, as: UTF8.self).split(separator: "\n").suffix(5).joined(separator: "\n")
            throw LlamaBenchFailure("\(tool.lastPathComponent) \(arguments.joined(separator: " ")) exited with \(process.terminationStatus):\n\(tail)")
        }
        return String(decoding: stdout, as: UTF8.self).split(separator: "\n").compactMap { line in
            line.hasPrefix("{") ? try? JSONValue.parse(String(line)) : nil
        }
    }
}

struct LlamaBenchFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
