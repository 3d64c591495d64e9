import AMQP
import ArgumentParser
import Logging

/// The broker a process talks to, spelled the same in every executable: `--amqp-url`, else
/// `HYPERION_AMQP_URL`, else the URL `scripts/up` wrote to `.run/amqp_url`, else a local broker.
///
/// The default is resolved when the command runs, not when help is printed, so `--help` never
/// shows a password read from the environment or from `.run/amqp_url`.
public struct BrokerOptions: ParsableArguments, Sendable {
    @Option(
        name: .customLong("amqp-url"),
        help: ArgumentHelp(
            "Broker URL, amqp:// or amqps:// (HYPERION_AMQP_URL; else .run/amqp_url; else amqp://guest:guest@localhost:5672/).",
            valueName: "url"))
    var given: String?

    public init() {}

    /// The URL this process uses.
    public var amqpURL: String { given ?? ProcessEnvironment.amqpURL() }

    /// Whether the URL came from the command line (some commands run locally without one).
    public var isGiven: Bool { given != nil }

    /// Takes an old spelling's value (a hidden alias kept for one release); both at once is an error.
    public mutating func adopt(alias value: String?, spelled flag: String) throws {
        guard let value else { return }
        guard given == nil else { throw ValidationError("\(flag) and --amqp-url: give one (\(flag) is the old spelling)") }
        do { _ = try AMQPURL(value) } catch { throw ValidationError("\(flag): \(error)") }
        given = value
    }

    public func validate() throws {
        let source = given == nil ? (ProcessEnvironment.string("HYPERION_AMQP_URL") == nil ? nil : "HYPERION_AMQP_URL") : "--amqp-url"
        guard let source else { return }
        do { _ = try AMQPURL(amqpURL) } catch { throw ValidationError("\(source): \(error)") }
    }
}

/// What every long-running service shares: how much it logs.
public struct ServiceOptions: ParsableArguments, Sendable {
    @Option(
        name: .customLong("log-level"),
        help: ArgumentHelp(
            "trace, debug, info (default), notice, warning, error or critical (HYPERION_LOG_LEVEL).", valueName: "level"))
    var given: String?

    public init() {}

    /// The level from `--log-level`, else `HYPERION_LOG_LEVEL`, else info.
    public var logLevel: Logger.Level {
        (given ?? ProcessEnvironment.string("HYPERION_LOG_LEVEL")).flatMap { Logger.Level(rawValue: $0.lowercased()) } ?? .info
    }

    public func validate() throws {
        let (text, source) = given.map { ($0, "--log-level") }
            ?? (ProcessEnvironment.string("HYPERION_LOG_LEVEL").map { ($0, "HYPERION_LOG_LEVEL") } ?? ("info", ""))
        guard Logger.Level(rawValue: text.lowercased()) != nil else {
            throw ValidationError("\(source): expected trace, debug, info, notice, warning, error or critical, got '\(text)'")
        }
    }

    /// Sets up logging once per process, to standard error at this level.
    public func bootstrapLogging() {
        ProcessEnvironment.bootstrapLogging(level: logLevel)
    }
}

/// A node's identity in queue names, heartbeats and telemetry: `--node-id`, else
/// `HYPERION_NODE_ID`, else `<hostname>-<random>` chosen once when the command starts.
public struct NodeOptions: ParsableArguments, Sendable {
    @Option(
        name: .customLong("node-id"),
        help: ArgumentHelp(
            "Unique node id [A-Za-z0-9_-] (HYPERION_NODE_ID; default <hostname>-<random>, new for every process).",
            valueName: "id"))
    var given: String?

    public init() {}

    /// The id: the flag, else `HYPERION_NODE_ID`, else one `<hostname>-<random>` per process.
    public var nodeID: String {
        given ?? ProcessEnvironment.string("HYPERION_NODE_ID") ?? ProcessEnvironment.processNodeID
    }

    /// Takes an old spelling's value (a hidden alias kept for one release); both at once is an error.
    public mutating func adopt(alias value: String?, spelled flag: String) throws {
        guard let value else { return }
        guard given == nil else { throw ValidationError("\(flag) and --node-id: give one (\(flag) is the old spelling)") }
        guard !value.isEmpty, ProcessEnvironment.sanitizedID(value) == value else {
            throw ValidationError("\(flag): '\(value)' may use only letters, digits, - and _")
        }
        given = value
    }

    public func validate() throws {
        let (text, source) = given.map { ($0, "--node-id") }
            ?? (ProcessEnvironment.string("HYPERION_NODE_ID").map { ($0, "HYPERION_NODE_ID") } ?? ("", ""))
        guard !source.isEmpty else { return }
        guard !text.isEmpty, ProcessEnvironment.sanitizedID(text) == text else {
            throw ValidationError("\(source): '\(text)' may use only letters, digits, - and _")
        }
    }
}
