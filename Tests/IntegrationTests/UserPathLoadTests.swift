import Foundation
import IntegrationSupport
import JSON
import Testing

/// The path a new user takes: the cluster `scripts/up` starts (planner with re-planning on, the
/// scheduler's and workers' defaults), loaded by 16 concurrent requests for two minutes.
@Suite("The user's path under load", .serialized)
struct UserPathLoadTests {
    @Test("scripts/up's cluster serves 16 concurrent requests for 2 minutes without a failure")
    func sixteenForTwoMinutes() async throws {
        let host = try await TestVirtualHost.create(prefix: "test-user-path")
        // `bench load --local-cluster` starts what scripts/up starts; 1 concurrent first, for the ratio.
        let outcome = Result { try runToEnd(
            try ServiceProcess.binaryPath("hyperion"),
            [
                "bench", "load", "--local-cluster", "--amqp-url", host.urlText, "--model", try TestPaths.modelFile(),
                "--concurrency", "1,16", "--duration", "120", "--warm-up", "5", "--json",
            ]) }
        await host.delete()
        let run = try outcome.get()
        #expect(run.status == 0, "bench load exited \(run.status):\n\(run.stderr.suffix(4000))")
        let report = try JSONValue.parse(bytes: Array(run.stdout.utf8))
        let results = try #require(report["results"]?.arrayValue, "no results in:\n\(run.stdout)")
        #expect(results.count == 2)
        var tokensPerSecond: [Int64: Double] = [:]
        for point in results {
            let clients = point["concurrency"]?.intValue ?? 0
            let failed = point["failed"]?.intValue ?? -1
            #expect(failed == 0, "\(clients) concurrent: \(failed) failed, by reason \(point["failure_reasons"].map { $0.serialized() } ?? "?")")
            #expect((point["completed"]?.intValue ?? 0) > 0, "\(clients) concurrent completed nothing")
            tokensPerSecond[clients] = point["tokens_per_s"]?.doubleValue ?? 0
            print("user path, \(clients) concurrent: \(point["completed"]?.intValue ?? 0) done, \(failed) failed, "
                + "\(tokensPerSecond[clients] ?? 0) tok/s, largest inter-token gap \(point["max_inter_token_s"]?.doubleValue ?? 0) s")
        }
        if let one = tokensPerSecond[1], let sixteen = tokensPerSecond[16], one > 0 {
            print("user path: tokens/s at 16 concurrent = \(sixteen / one)× that at 1")
        }
    }
}
