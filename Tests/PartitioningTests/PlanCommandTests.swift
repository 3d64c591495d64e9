import Foundation
import IntegrationSupport
import JSON
import Testing

/// `hyperion plan` as a user runs it: the built binary, its output and its exit codes.
///
/// The binary is the `hyperion` product beside this test bundle (`swift build --build-tests` builds
/// both into the same folder), or `HYPERION_BIN`. A missing binary is a failure, not a skip.
@Suite("hyperion plan: output and exit codes")
struct PlanCommandTests {
    typealias Run = CommandRun

    struct MissingBinary: Error, CustomStringConvertible {
        let path: String
        var description: String { "hyperion not found at \(path): build the product (swift build --build-tests builds it) or set HYPERION_BIN" }
    }

    static func binaryPath() throws -> String {
        if let path = ProcessInfo.processInfo.environment["HYPERION_BIN"] { return path }
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            ?? CommandLine.arguments[0]
        var directory = URL(fileURLWithPath: executable).deletingLastPathComponent()
        // On some platforms the test binary sits inside a bundle (…/X.xctest/Contents/MacOS/).
        while directory.path.contains(".xctest") { directory.deleteLastPathComponent() }
        let path = directory.appendingPathComponent("hyperion").path
        guard FileManager.default.isExecutableFile(atPath: path) else { throw MissingBinary(path: path) }
        return path
    }

    static func run(_ arguments: [String]) throws -> Run {
        try runToEnd(try binaryPath(), ["plan"] + arguments, in: PlannerFiles.packageRoot)
    }

    static func temporaryFile(_ text: String) throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("hyperion-plan-\(UUID().uuidString).json")
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }

    @Test("a plan: exit 0, a table by default, the §4 JSON with the workload echoed under --json")
    func plan() throws {
        let table = try Self.run(["--model", "phi-3-medium:q4_0", "--topology", "examples/paper-testbed.json"])
        #expect(table.status == 0, "\(table.stderr)")
        #expect(table.stdout.contains("bottleneck"))
        #expect(table.stdout.contains("edge") && table.stdout.contains("fog") && table.stdout.contains("cloud"))

        let json = try Self.run([
            "--model", "phi-3-medium:q4_0", "--topology", "examples/paper-testbed.json", "--prompt-tokens", "256",
            "--output-tokens", "64", "--decode-batch", "4", "--json",
        ])
        #expect(json.status == 0, "\(json.stderr)")
        let plan = try JSONValue.parse(json.stdout)
        #expect(plan["v"] == .int(1))
        #expect(plan["partition"] == .string("bsdp"))
        #expect(plan["workload"]?["prompt_tokens"] == .int(256))
        #expect(plan["workload"]?["decode_batch"] == .int(4))
        #expect(plan["stages"]?[0]?["first_block"] == .int(0))
        #expect(plan["stages"]?[2]?["last_block"] == .int(39))
        #expect((plan["bottleneck_s"]?.doubleValue ?? 0) > 0)
    }

    @Test("the SmolLM2 GGUF plans on the local topology, and the baselines run")
    func localAndBaselines() throws {
        for policy in ["bsdp", "gpipe", "heft"] {
            let run = try Self.run([
                "--model", "smollm2-135m:q4_1", "--topology", "examples/local-topology.json", "--partition", policy,
                "--json",
            ])
            #expect(run.status == 0, "\(policy): \(run.stderr)")
            #expect(try JSONValue.parse(run.stdout)["partition"] == JSONValue.string(policy))
        }
    }

    @Test("bad input exits 2 with a message naming the flag or field")
    func badInput() throws {
        let badTopology = try Self.temporaryFile("""
            {"tiers":[{"name":"a","nodes":[{"id":"a1","flops":1e9,"memory_bytes":1e9}],
              "link_to_next":{"bandwidth_bytes_per_s":1e8,"latency_s":0}},
             {"name":"b","nodes":[{"id":"b1","flops":0,"memory_bytes":1e9}]}]}
            """)
        defer { try? FileManager.default.removeItem(atPath: badTopology) }
        let cases: [([String], String)] = [
            (["--model", "smollm2-135m", "--topology", "examples/local-topology.json", "--prompt-tokens", "many"], "--prompt-tokens"),
            (["--model", "smollm2-135m", "--topology", "examples/local-topology.json", "--prefill-chunk", "0"], "--prefill-chunk"),
            (["--model", "smollm2-135m", "--topology", "examples/local-topology.json", "--partition", "random"], "--partition"),
            (["--model", "gpt-9", "--topology", "examples/local-topology.json"], "--model"),
            (["--model", "smollm2-135m:q5_k", "--topology", "examples/local-topology.json"], "--model"),
            (["--topology", "examples/local-topology.json"], "--model"),
            (["--model", "smollm2-135m", "--topology", "no/such/file.json"], "--topology"),
            (["--model", "smollm2-135m", "--topology", badTopology], "topology.tiers[1].nodes[0].flops"),
        ]
        for (arguments, named) in cases {
            let run = try Self.run(arguments)
            #expect(run.status == 2, "\(arguments): \(run.stderr)")
            #expect(run.stderr.contains(named), "\(arguments): \(run.stderr)")
            #expect(run.stdout.isEmpty)
        }
    }

    @Test("--rate chooses the plan for that load and lists the candidates it simulated; bad rate flags exit 2")
    func rate() throws {
        let common = ["--model", "phi-3-medium:q4_0", "--topology", "examples/paper-testbed.json", "--prompt-tokens", "256",
            "--output-tokens", "64", "--score-requests", "200"]
        let light = try Self.run(common + ["--rate", "0.5"])
        #expect(light.status == 0, "\(light.stderr)")
        #expect(light.stdout.contains("candidates simulated at 0.5 req/s"), "\(light.stdout)")
        #expect(light.stdout.contains("least bottleneck") && light.stdout.contains("heft") && light.stdout.contains("gpipe"))
        // At light load a path through fewer tiers beats the least-bottleneck plan across all three.
        #expect(light.stdout.contains("(no blocks on:"), "\(light.stdout)")
        let json = try Self.run(common + ["--rate", "0.5", "--json"])
        #expect(json.status == 0)
        #expect(try JSONValue.parse(json.stdout)["stages"]?.arrayValue?.isEmpty == false)
        #expect(json.stderr.contains("candidates simulated"))

        for (arguments, message) in [
            (["--rate", "-1"], "--rate: expected a number of requests per second > 0, got '-1'"),
            (["--rate", "fast"], "--rate: expected a number of requests per second > 0, got 'fast'"),
            (["--rate", "1", "--partition", "heft"], "--rate: chooses among BSDP's plans"),
            (["--score-requests", "0", "--rate", "1"], "--score-requests: expected an integer from 1 to 1000000, got '0'"),
            (["--score-requests", "10"], "--score-requests: only with --rate"),
        ] {
            let run = try Self.run(["--model", "phi-3-medium:q4_0", "--topology", "examples/paper-testbed.json"] + arguments)
            #expect(run.status == 2, "\(arguments)")
            #expect(run.stderr.contains("hyperion plan: " + message), "\(arguments): \(run.stderr)")
        }
    }

    @Test("no partition fits: exit 3, with the §4 infeasible JSON under --json")
    func infeasible() throws {
        let tiny = try Self.temporaryFile("""
            {"tiers":[{"name":"edge","nodes":[{"id":"e1","flops":1e9,"memory_bytes":1e6}],
              "link_to_next":{"bandwidth_bytes_per_s":1e8,"latency_s":0}},
             {"name":"cloud","nodes":[{"id":"c1","flops":1e9,"memory_bytes":1e12}]}]}
            """)
        defer { try? FileManager.default.removeItem(atPath: tiny) }
        // The edge holds no block: by default the cloud takes them all and the edge is left out.
        let free = try Self.run(["--model", "smollm2-135m:q4_1", "--topology", tiny])
        #expect(free.status == 0, "\(free.stderr)")
        #expect(free.stdout.contains("(no blocks on: edge)"), "\(free.stdout)")
        let json = try Self.run(["--model", "smollm2-135m:q4_1", "--topology", tiny, "--json", "--require-every-tier"])
        #expect(json.status == 3)
        let answer = try JSONValue.parse(json.stdout)
        #expect(answer["v"] == .int(1))
        #expect(answer["infeasible"]?["tier"] == .string("edge"))
        #expect(answer["infeasible"]?["max_node_bytes"] == .int(1_000_000))
        #expect((answer["infeasible"]?["need_bytes"]?.doubleValue ?? 0) > 1e6)
        let table = try Self.run(["--model", "smollm2-135m:q4_1", "--topology", tiny, "--require-every-tier"])
        #expect(table.status == 3)
        #expect(table.stdout.contains("edge"))
    }
}
