import AMQP
import Foundation
import IntegrationSupport
import JSON
import Messages
import Testing

/// The configured limits as a client meets them: a prompt over `--max-prompt-tokens` is refused
/// with `too_long`, and a full ingress queue (`--ingress-max-length`) makes `hyperion generate`
/// say "system overloaded" instead of waiting; a scheduler configured with another bound refuses
/// to start rather than serve a queue it did not declare.
@Suite("Limits: prompt length and a bounded ingress queue", .serialized)
struct LimitsTests {
    @Test("a long prompt gets too_long; a full ingress queue makes generate exit 75 with 'system overloaded'")
    func promptLimitAndOverload() async throws {
        let host = try await TestVirtualHost.create(prefix: "test-limits")
        let model = try TestPaths.modelFile()
        // No workers: the one request the scheduler admits waits for a route, the rest wait in ingress.
        let scheduler = try ServiceProcess(
            "scheduler",
            arguments: ["--node-id", "limits", "--model", model, "--max-in-flight", "1", "--ingress-max-length", "2", "--max-prompt-tokens", "8"],
            amqpURL: host.urlText, logLevel: "info")
        let client = try await host.connect("limits-client")
        do {
            guard await scheduler.logLine(containing: "admitting up to", timeoutSeconds: 60) != nil else {
                throw TestPaths.Missing(description: "the scheduler did not start; its log:\n\(scheduler.log)")
            }
            let replies = try await client.declare(AMQPQueue(name: "", durable: false, exclusive: true, autoDelete: true)).name
            let inbox = try await Inbox(queue: replies, on: client)
            func send(_ id: String, _ prompt: String) async throws {
                let request = InferenceRequest(id: id, input: .prompt(prompt), maxTokens: 4)
                try await client.publishConfirmed(
                    AMQPMessage(
                        body: encodeMessage(request),
                        properties: AMQPProperties(contentType: Names.ContentType.json, deliveryMode: 2, correlationID: id, replyTo: replies)),
                    exchange: Names.Exchange.ingress, routingKey: Names.Queue.ingress)
            }

            try await send("long", "one two three four five six seven eight nine ten eleven twelve")
            let refusal = await inbox.first(timeoutSeconds: 30) { $0.properties.correlationID == "long" }
            let error = try #require(refusal.flatMap { try? decodeMessage(ErrorReply.self, from: $0.body) }, "no error reply to a long prompt")
            #expect(error.code == .tooLong)
            #expect(error.message.contains("limit is 8"), "\(error.message)")

            // One request held by the scheduler, two waiting: the queue is full.
            try await send("held", "Hi")
            var taken = false
            for _ in 0..<300 where !taken {
                taken = try await client.inspectQueue(Names.Queue.ingress).messageCount == 0
                if !taken { try await Task.sleep(for: .milliseconds(100)) }
            }
            #expect(taken, "the scheduler took the first request from ingress")
            try await send("waiting-1", "Hi")
            try await send("waiting-2", "Hi")
            await #expect(throws: AMQPError.nacked) { try await send("refused", "Hi") }

            let (status, errors) = try Self.generate(url: host.urlText, prompt: "Hi")
            #expect(status == 75, "exit status; stderr: \(errors)")
            #expect(errors.contains("system overloaded"), "\(errors)")

            // A second scheduler declaring another bound is refused by the broker and says so.
            let mismatched = try ServiceProcess(
                "scheduler", arguments: ["--node-id", "limits-2", "--model", model, "--ingress-max-length", "5"], amqpURL: host.urlText,
                logLevel: "info")
            let exit = await mismatched.waitForExit(timeoutSeconds: 60)
            #expect(exit != nil && exit != 0, "a scheduler with another --ingress-max-length must not start")
            #expect(mismatched.log.contains("x-max-length"), "\(mismatched.log)")
        } catch {
            _ = await scheduler.terminate(timeoutSeconds: 5)
            await client.close()
            await host.delete()
            throw error
        }
        _ = await scheduler.terminate(timeoutSeconds: 5)
        await client.close()
        await host.delete()
    }

    /// Runs `hyperion generate` against `url`; returns its exit status and standard error.
    static func generate(url: String, prompt: String) throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try ServiceProcess.binaryPath("hyperion"))
        process.arguments = ["generate", "--amqp-url", url, "--timeout-seconds", "20", "--max-tokens", "4", prompt]
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, text)
    }
}
