import AMQP
import Foundation
import IntegrationSupport
import JSON
import Messages
import Testing

/// `hyperion generate` and `hyperion status` as a user meets them: the built binary, its exit
/// statuses and messages, and what it leaves behind in a running system when it stops waiting.
@Suite("hyperion generate: cancelling, errors and exit statuses", .serialized)
struct GenerateCommandTests {
    static func hyperion(_ arguments: [String]) throws -> CommandRun {
        try runToEnd(try ServiceProcess.binaryPath("hyperion"), arguments)
    }

    /// A `hyperion generate` still running, with what it printed so far.
    final class Running: @unchecked Sendable {
        // Sendable: `output` is guarded by its lock; `process` is only signalled and waited on.
        let process = Process()
        private let output = Locked(Data())
        private let errors = Locked(Data())
        /// Both pipes reached their end: everything the process wrote has been read.
        private let ended = Locked(0)

        init(_ arguments: [String]) throws {
            process.executableURL = URL(fileURLWithPath: try ServiceProcess.binaryPath("hyperion"))
            process.arguments = arguments
            let out = Pipe()
            let err = Pipe()
            process.standardOutput = out
            process.standardError = err
            for (pipe, buffer) in [(out, output), (err, errors)] {
                pipe.fileHandleForReading.readabilityHandler = { [ended] handle in
                    let data = handle.availableData
                    if data.isEmpty {
                        handle.readabilityHandler = nil
                        ended.withLock { $0 += 1 }
                    } else {
                        buffer.withLock { $0.append(data) }
                    }
                }
            }
            try process.run()
        }

        var stdout: String { String(decoding: output.withLock { $0 }, as: UTF8.self) }
        var stderr: String { String(decoding: errors.withLock { $0 }, as: UTF8.self) }

        /// The exit status once the process has exited and all it wrote has been read, or nil if
        /// that has not happened within `timeoutSeconds`.
        func exitStatus(timeoutSeconds: Double) async -> Int32? {
            await eventually(timeoutSeconds: timeoutSeconds) {
                self.process.isRunning || self.ended.withLock({ $0 }) < 2 ? nil : self.process.terminationStatus
            }
        }
    }

    /// Waits until no worker holds a sequence, printing how long that took; fails after 30 s.
    static func expectWorkersRelease(_ cluster: Cluster, after what: String) async {
        let started = Date()
        for id in ["edge-1", "fog-1", "cloud-1"] {
            let beat = await cluster.freshHeartbeat(of: id, timeoutSeconds: 30 - Date().timeIntervalSince(started)) { $0.activeSequences == 0 }
            #expect(beat != nil, "\(id) still holds a sequence 30 s after \(what); logs:\n\(cluster.logs)")
        }
        print("after \(what), every worker reported 0 sequences held within \(String(format: "%.2f", Date().timeIntervalSince(started))) s")
    }

    @Test("Ctrl-C and --timeout-seconds cancel the request: the workers stop decoding and release its sequence")
    func cancelOnInterruptAndTimeout() async throws {
        try await Cluster.with { cluster in
            let url = cluster.host.urlText
            // 4,000 tokens (under the scheduler's default limit of 4,096) take over a minute to
            // decode, so a worker that lets go of the sequence within 30 s was told to.
            // Ctrl-C while tokens stream: exit 130, and the request is cancelled in the system.
            let interrupted = try Running(["generate", "--amqp-url", url, "--max-tokens", "4000", PipelineTests.counting])
            let streaming = await eventually(timeoutSeconds: 120) { interrupted.stdout.count >= 8 ? true : nil }
            try #require(streaming == true, "no tokens streamed; stderr: \(interrupted.stderr); logs:\n\(cluster.logs)")
            let held = await cluster.freshHeartbeat(of: "cloud-1", timeoutSeconds: 10) { $0.activeSequences > 0 }
            #expect(held != nil, "the request was not decoding when interrupted")
            interrupted.process.interrupt()
            let status = await interrupted.exitStatus(timeoutSeconds: 10)
            #expect(status == 130, "exit status after Ctrl-C; stderr: \(interrupted.stderr)")
            #expect(interrupted.stderr.contains("the request was cancelled"), "\(interrupted.stderr)")
            await Self.expectWorkersRelease(cluster, after: "Ctrl-C")

            // --timeout-seconds: exit 124 with the streamed count, and the request is cancelled too.
            let timedOut = try Running(["generate", "--amqp-url", url, "--max-tokens", "4000", "--timeout-seconds", "4", PipelineTests.counting])
            let timedOutStatus = await timedOut.exitStatus(timeoutSeconds: 60)
            #expect(timedOutStatus == 124, "exit status after --timeout; stderr: \(timedOut.stderr)")
            #expect(timedOut.stderr.contains("no result within 4 s, after"), "\(timedOut.stderr)")
            await Self.expectWorkersRelease(cluster, after: "--timeout 4")

            // --json through the broker: the same result object as --local prints.
            let remote = try Self.hyperion(["generate", "--amqp-url", url, "--json", "--max-tokens", "6", "The capital of France is"])
            #expect(remote.status == 0, "\(remote.stderr)")
            let local = try Self.hyperion([
                "generate", "--local", "--json", "--model", try TestPaths.modelFile(), "--max-tokens", "6", "The capital of France is",
            ])
            #expect(local.status == 0, "\(local.stderr)")
            let remoteResult = try decodeMessage(ResultReply.self, from: Array(remote.stdout.utf8))
            let localResult = try decodeMessage(ResultReply.self, from: Array(local.stdout.utf8))
            #expect(localResult.tokens == remoteResult.tokens)
            #expect(localResult.usage == remoteResult.usage)
            #expect(localResult.route == ["local"])
            let remoteKeys = try JSONValue.parse(remote.stdout).objectValue?.keys.sorted()
            let localKeys = try JSONValue.parse(local.stdout).objectValue?.keys.sorted()
            #expect(remoteKeys == localKeys)
        }
    }

    @Test("no broker, a refused login, a broker without Hyperion and a bad URL each say so, with their own exit status")
    func connectionFailures() async throws {
        let host = try await TestVirtualHost.create(prefix: "test-cli-errors")
        do {
            try Self.connectionFailures(host)
        } catch {
            await host.delete()
            throw error
        }
        await host.delete()
    }

    static func connectionFailures(_ host: TestVirtualHost) throws {
        func generate(_ url: String) throws -> CommandRun {
            try Self.hyperion(["generate", "--amqp-url", url, "--timeout-seconds", "10", "--max-tokens", "2", "Hi"])
        }
        // Port 1: nothing listens there.
        let unreachable = try generate("amqp://guest:guest@127.0.0.1:1/%2F")
        #expect(unreachable.status == 69, "\(unreachable.stderr)")
        #expect(unreachable.stderr.contains("connection refused at 127.0.0.1:1: is the broker up?"), "\(unreachable.stderr)")

        let refused = try generate("amqp://\(host.url.user):not-the-password@\(host.url.host):\(host.url.port)/\(host.name)")
        #expect(refused.status == 77, "\(refused.stderr)")
        #expect(refused.stderr.contains("refused the login"), "\(refused.stderr)")

        // A fresh virtual host: a broker, but no Hyperion service ever declared its exchanges.
        let empty = try generate(host.urlText)
        #expect(empty.status == 69, "\(empty.stderr)")
        #expect(empty.stderr.contains("no Hyperion services on the broker"), "\(empty.stderr)")

        for bad in ["http://localhost:5672/", "amqp://localhost:99999/", "amqp://localhost/?heartbeat=10"] {
            let run = try generate(bad)
            #expect(run.status == 2, "\(bad): \(run.stderr)")
            #expect(run.stderr.contains("invalid AMQP URL"), "\(bad): \(run.stderr)")
        }
        let status = try Self.hyperion(["status", "--amqp-url", "amqp://guest:guest@127.0.0.1:1/%2F"])
        #expect(status.status == 69, "\(status.stderr)")
    }
}

/// Input mistakes refused before any work, each exit 2 with the rule it broke; none needs a broker.
@Suite("hyperion generate, plan and status: input errors")
struct CommandInputTests {
    @Test("a bad value exits 2 naming the rule, negative numbers included", arguments: [
        (["generate", "--temperature", "-1", "Hi"], "--temperature must be ≥ 0, got -1"),
        (["generate", "--max-tokens", "-5", "Hi"], "--max-tokens must be ≥ 1, got -5"),
        (["generate", "--top-k", "-3", "Hi"], "--top-k must be ≥ 0, got -3"),
        (["generate", "--local", "--max-tokens", "0", "Hi"], "--max-tokens must be ≥ 1, got 0"),
        (["generate", "--max-tokens", "0", "Hi"], "--max-tokens must be ≥ 1, got 0"),
        (["generate", "--timeout-seconds", "-1", "Hi"], "--timeout-seconds must be > 0"),
        (["generate", "--tokens", "1,a"], "--tokens: \"a\" is not a token id"),
        (["generate", "--local", "--tokens", "1,a"], "--tokens: \"a\" is not a token id"),
        (["generate", ""], "the prompt is empty"),
        (["plan", "--model", "smollm2-135m", "--topology", TestPaths.localTopology, "--prompt-tokens", "-5"], "--prompt-tokens"),
        (["status", "--listen", "0"], "--listen must be > 0"),
        (["bench", "inference", "--llama-bench", "/nonexistent"], "--llama-bench /nonexistent: no executable llama-bench"),
        (["bench", "inference", "--llama-bench", "/tmp", "--compare-kernels"], "--compare-kernels and --llama-bench: choose one"),
        (["bench", "inference", "--products", "--compare-kernels"], "--products times the products alone on every kernel set"),
    ])
    func refusals(arguments: [String], rule: String) throws {
        let run = try GenerateCommandTests.hyperion(arguments)
        #expect(run.status == 2, "\(arguments): \(run.stderr)")
        #expect(run.stderr.contains(rule), "\(arguments): \(run.stderr)")
    }

    @Test("a prompt beyond the context window is refused at once with --local, as through the broker")
    func tooLongLocally() throws {
        let ids = Array(repeating: "504", count: 9000).joined(separator: ",")
        let started = Date()
        let run = try GenerateCommandTests.hyperion(["generate", "--local", "--model", try TestPaths.modelFile(), "--tokens", ids])
        #expect(run.status == 2, "\(run.stderr)")
        #expect(run.stderr.contains("too_long: the prompt has 9000 tokens; the model's context window is 8192"), "\(run.stderr)")
        #expect(Date().timeIntervalSince(started) < 30, "refused only after computing")
    }

    @Test("a file that is not GGUF is named so, without advice to pass the --model that was passed")
    func notGGUF() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("not-a-model-\(UUID().uuidString).gguf")
        try Data("hi".utf8).write(to: path)
        defer { try? FileManager.default.removeItem(at: path) }
        let run = try GenerateCommandTests.hyperion(["generate", "--local", "--model", path.path, "Hi"])
        #expect(run.status != 0)
        #expect(run.stderr.contains("not a GGUF file"), "\(run.stderr)")
        #expect(!run.stderr.contains("pass --model"), "\(run.stderr)")
    }
}
