import Foundation
import IntegrationSupport
import Testing

/// One spelling of every shared flag in every executable, as a user reading `--help` meets them:
/// the broker URL, the log level and the node id mean the same everywhere, old spellings still
/// work for one release without showing in help, and help never shows a secret or a random value.
@Suite("Flags: one spelling everywhere, old spellings kept hidden")
struct FlagSpellingTests {
    /// Every command that talks to the broker: its words, and what else it needs to parse.
    static let brokerCommands: [(executable: String, words: [String], required: [String])] = [
        ("scheduler", [], []), ("stage-worker", [], ["--tier", "edge"]), ("partition-planner", [], []),
        ("link-emulator", [], ["--link", "edge-fog"]), ("hyperion", ["status"], []), ("hyperion", ["generate"], ["Hi"]),
        ("hyperion", ["bench", "load"], []), ("hyperion", ["bench", "pipeline"], []), ("hyperion", ["bench", "emulation"], []),
        ("hyperion", ["bench", "amqp"], []),
    ]
    static let services = ["scheduler", "stage-worker", "partition-planner", "link-emulator"]
    static let secretURL = "amqp://someone:pw-from-the-environment@broker.invalid:5672/%2F"

    static func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws -> CommandRun {
        let quiet = ["HYPERION_AMQP_URL": secretURL, "HYPERION_LOG_LEVEL": "info", "HYPERION_NODE_ID": ""]
        return try runToEnd(
            try ServiceProcess.binaryPath(executable), arguments,
            environment: quiet.merging(environment) { _, given in given })
    }

    static func parses(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws -> CommandRun {
        try run(executable, arguments, environment: environment.merging(["HYPERION_PARSE_ONLY": "1"]) { _, given in given })
    }

    /// The help text of one option: its line and the indented lines that continue it.
    static func helpEntry(_ flag: String, in help: String) -> String? {
        let lines = help.components(separatedBy: "\n")
        guard let start = lines.firstIndex(where: { $0.trimmingCharacters(in: .whitespaces).hasPrefix(flag + " ") }) else { return nil }
        var entry = [lines[start].trimmingCharacters(in: .whitespaces)]
        for line in lines[(start + 1)...] {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty, !trimmed.hasPrefix("-") else { break }
            entry.append(trimmed)
        }
        return entry.joined(separator: " ")
    }

    @Test("every broker client spells the URL --amqp-url with the same help, and help shows no password")
    func oneBrokerFlag() throws {
        var entries: Set<String> = []
        for (executable, words, required) in Self.brokerCommands {
            let help = try Self.run(executable, words + ["--help"])
            let arguments = words + required
            let name = ([executable] + words).joined(separator: " ")
            #expect(help.status == 0, "\(name) --help exited \(help.status)")
            let entry = Self.helpEntry("--amqp-url <url>", in: help.stdout)
            #expect(entry != nil, "\(name) --help has no --amqp-url <url>")
            entries.insert(entry ?? "")
            #expect(!help.stdout.contains("pw-from-the-environment"), "\(name) --help shows the password from HYPERION_AMQP_URL")
            #expect(!help.stdout.contains("--url"), "\(name) --help shows the old spelling --url")
            // The URL parses from the environment as from the flag.
            let parsed = try Self.parses(executable, arguments + ["--amqp-url", "amqp://guest:guest@127.0.0.1:5672/%2F"])
            #expect(parsed.status == 0, "\(name) --amqp-url …: \(parsed.stderr)")
            let bad = try Self.parses(executable, arguments + ["--amqp-url", "http://nowhere"])
            #expect(bad.status == 2 && bad.stderr.contains("--amqp-url"), "\(name) with a bad --amqp-url: \(bad.status) \(bad.stderr)")
        }
        #expect(entries.count == 1, "the --amqp-url help differs between executables: \(entries.sorted())")
    }

    @Test("every service takes --log-level; a bad level names the flag or the variable", arguments: services)
    func logLevel(service: String) throws {
        let arguments = Self.brokerCommands.first { $0.executable == service }?.required ?? []
        let help = try Self.run(service, ["--help"])
        #expect(Self.helpEntry("--log-level <level>", in: help.stdout)?.contains("HYPERION_LOG_LEVEL") == true, "\(help.stdout)")
        #expect(try Self.parses(service, arguments + ["--log-level", "debug"]).status == 0)
        let badFlag = try Self.parses(service, arguments + ["--log-level", "loud"])
        #expect(badFlag.status == 2 && badFlag.stderr.contains("--log-level") && badFlag.stderr.contains("'loud'"), "\(badFlag.stderr)")
        let badVariable = try Self.parses(service, arguments, environment: ["HYPERION_LOG_LEVEL": "loud"])
        #expect(badVariable.status == 2 && badVariable.stderr.contains("HYPERION_LOG_LEVEL"), "\(badVariable.stderr)")
    }

    @Test("--node-id: the same help every time (no random default shown), checked like any input", arguments: ["scheduler", "stage-worker"])
    func nodeID(service: String) throws {
        let arguments = service == "stage-worker" ? ["--tier", "edge"] : []
        let first = try Self.run(service, ["--help"]).stdout
        let second = try Self.run(service, ["--help"]).stdout
        #expect(first == second, "\(service) --help differs between two runs")
        #expect(Self.helpEntry("--node-id <id>", in: first)?.contains("(default:") == false, "\(first)")
        #expect(try Self.parses(service, arguments + ["--node-id", "edge-7"]).status == 0)
        let bad = try Self.parses(service, arguments + ["--node-id", "edge 7"])
        #expect(bad.status == 2 && bad.stderr.contains("--node-id"), "\(bad.stderr)")
        let badVariable = try Self.parses(service, arguments, environment: ["HYPERION_NODE_ID": "a/b"])
        #expect(badVariable.status == 2 && badVariable.stderr.contains("HYPERION_NODE_ID"), "\(badVariable.stderr)")
    }

    @Test("old spellings still parse for one release, and --help does not show them")
    func oldSpellings() throws {
        let cases: [(executable: String, arguments: [String], old: String, new: String)] = [
            ("scheduler", ["--id", "sched-1"], "--id", "--node-id"),
            ("hyperion", ["bench", "amqp", "--url", "amqp://guest:guest@127.0.0.1:5672/%2F"], "--url", "--amqp-url"),
            ("hyperion", ["generate", "--timeout", "5", "Hi"], "--timeout", "--timeout-seconds"),
            ("hyperion", ["generate", "--save-result", "/tmp/result.json", "Hi"], "--save-result", "--output"),
            ("hyperion", ["bench", "inference", "--decode-tokens", "8"], "--decode-tokens", "--output-tokens"),
            ("hyperion", ["bench", "pipeline", "--decode-tokens", "8"], "--decode-tokens", "--output-tokens"),
            ("hyperion", ["report", "--out", "/tmp/r.html"], "--out", "--output"),
            ("hyperion", ["report", "--save-results", "/tmp/s.json"], "--save-results", "--simulated-output"),
        ]
        for (executable, arguments, old, new) in cases {
            let name = ([executable] + arguments).joined(separator: " ")
            let parsed = try Self.parses(executable, arguments)
            #expect(parsed.status == 0, "\(name): \(parsed.stderr)")
            let subcommand = arguments.prefix { !$0.hasPrefix("-") && $0 != "Hi" }
            let help = try Self.run(executable, Array(subcommand) + ["--help"]).stdout
            #expect(help.contains(new), "\(name): --help does not show \(new)")
            #expect(!help.contains(old + " "), "\(name): --help shows the old spelling \(old)")
        }
        let both = try Self.parses("scheduler", ["--id", "a", "--node-id", "b"])
        #expect(both.status == 2 && both.stderr.contains("--id and --node-id"), "\(both.stderr)")
    }

    @Test("a refused command line starts with the command that refused it, not the parser's 'Error:'")
    func errorPrefix() throws {
        let cases: [(executable: String, arguments: [String], prefix: String)] = [
            ("hyperion", ["generate", "--max-tokens", "0", "Hi"], "hyperion generate: --max-tokens"),
            ("hyperion", ["bench", "load", "--amqp-url", "http://x"], "hyperion bench load: --amqp-url"),
            ("scheduler", ["--max-in-flight", "0"], "scheduler: --max-in-flight"),
            ("stage-worker", ["--tier", "edge", "--threads", "0"], "stage-worker: --threads"),
        ]
        for (executable, arguments, prefix) in cases {
            let run = try Self.parses(executable, arguments)
            #expect(run.status == 2 && run.stderr.hasPrefix(prefix), "\(executable) \(arguments): \(run.stderr)")
        }
    }
}
