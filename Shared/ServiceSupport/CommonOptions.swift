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
        try refuseBoth(flag, "--amqp-url", given)
        do { _ = try AMQPURL(value) } catch { throw ValidationError("\(flag): \(error)") }
        given = value
    }

    public func validate() throws {
        guard let (text, source) = explicitSetting(given, flag: "--amqp-url", variable: "HYPERION_AMQP_URL") else { return }
        do { _ = try AMQPURL(text) } catch { throw ValidationError("\(source): \(error)") }
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
        guard let (text, source) = explicitSetting(given, flag: "--log-level", variable: "HYPERION_LOG_LEVEL") else { return }
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
        try refuseBoth(flag, "--node-id", given)
        guard !value.isEmpty, ProcessEnvironment.sanitizedID(value) == value else {
            throw ValidationError("\(flag): '\(value)' may use only letters, digits, - and _")
        }
        given = value
    }

    public func validate() throws {
        guard let (text, source) = explicitSetting(given, flag: "--node-id", variable: "HYPERION_NODE_ID") else { return }
        guard !text.isEmpty, ProcessEnvironment.sanitizedID(text) == text else {
            throw ValidationError("\(source): '\(text)' may use only letters, digits, - and _")
        }
    }
}

/// A setting the user gave, with the name to blame when it is wrong: the flag's value, else the
/// environment variable's; nil when neither is set (the built-in default needs no check).
private func explicitSetting(_ flagValue: String?, flag: String, variable: String) -> (text: String, source: String)? {
    if let flagValue { return (flagValue, flag) }
    return ProcessEnvironment.string(variable).map { ($0, variable) }
}

/// An old spelling and its new one on the same command line: refused, naming both.
private func refuseBoth(_ old: String, _ new: String, _ newValue: String?) throws {
    guard newValue == nil else { throw ValidationError("\(old) and \(new): give one (\(old) is the old spelling)") }
}
