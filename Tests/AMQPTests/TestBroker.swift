import AMQP
import Foundation
import Synchronization
import Testing

/// The private broker the integration tests run against (`scripts/broker start`; `scripts/test`
/// starts it and exports the variables). Missing configuration fails the test, never skips it.
enum TestBroker {
    struct NotConfigured: Error, CustomStringConvertible {
        let variable: String
        var description: String {
            "\(variable) is not set: start the private broker with `scripts/broker start` and export "
                + "HYPERION_TEST_AMQP_URL=$(scripts/broker url) HYPERION_TEST_RABBITMQ_NODE=$(scripts/broker node) "
                + "(scripts/test does both)"
        }
    }

    static func url() throws -> AMQPURL {
        guard let text = ProcessInfo.processInfo.environment["HYPERION_TEST_AMQP_URL"], !text.isEmpty else {
            throw NotConfigured(variable: "HYPERION_TEST_AMQP_URL")
        }
        return try AMQPURL(text)
    }

    static func nodeName() throws -> String {
        guard let node = ProcessInfo.processInfo.environment["HYPERION_TEST_RABBITMQ_NODE"], !node.isEmpty else {
            throw NotConfigured(variable: "HYPERION_TEST_RABBITMQ_NODE")
        }
        return node
    }

    static func connect(
        _ name: String, heartbeatSeconds: Int = 10, reconnect: AMQPConnectionConfiguration.Reconnect = .init(maxDelaySeconds: 0.5)
    ) async throws -> AMQPConnection {
        try await AMQPConnection.connect(
            to: url(),
            configuration: AMQPConnectionConfiguration(
                connectionName: "test-\(name)", heartbeatSeconds: heartbeatSeconds, reconnect: reconnect))
    }

    /// A queue name no other test (or earlier run) uses.
    static func uniqueName(_ prefix: String) -> String {
        "test.\(prefix).\(UInt32.random(in: 0...UInt32.max))"
    }

    /// Runs `rabbitmqctl -n NODE <arguments>`, fails when it does, and returns what it printed.
    @discardableResult
    static func rabbitmqctl(_ arguments: [String]) async throws -> String {
        let process = Process()
        let root = URL(fileURLWithPath: "/usr/sbin/rabbitmqctl")
        process.executableURL = getuid() == 0 ? root : URL(fileURLWithPath: "/usr/lib/rabbitmq/bin/rabbitmqctl")
        process.arguments = ["-n", try nodeName(), "-q"] + arguments
        let output = Pipe()
        process.standardOutput = output
        let status: Int32 = try await withCheckedThrowingContinuation { continuation in
            process.terminationHandler = { continuation.resume(returning: $0.terminationStatus) }
            do { try process.run() } catch { continuation.resume(throwing: error) }
        }
        let printed = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        guard status == 0 else {
            throw AMQPError.library(status: status, message: "rabbitmqctl \(arguments) failed")
        }
        return printed
    }
}

extension TestBroker {
    /// Makes the broker close the connection with this client-given name (`rabbitmqctl close_connection`).
    static func closeConnection(named name: String, reason: String) async throws {
        for _ in 0..<50 {
            let listing = try await rabbitmqctl(["list_connections", "pid", "client_properties"])
            if let line = listing.split(separator: "\n").first(where: { $0.contains("\"\(name)\"") }),
                let pid = line.split(separator: "\t").first
            {
                try await rabbitmqctl(["close_connection", String(pid), reason])
                return
            }
            try await Task.sleep(for: .milliseconds(100))  // the broker lists a new connection a little late
        }
        throw AMQPError.library(status: 0, message: "no connection named \(name)")
    }
}

/// Deterministic pseudo-random bytes, so a corrupted body shows as a mismatch, not as chance.
func patternBytes(count: Int, seed: UInt64) -> [UInt8] {
    var state = seed | 1
    var bytes = [UInt8](repeating: 0, count: count)
    for index in 0..<count {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        bytes[index] = UInt8(truncatingIfNeeded: state)
    }
    return bytes
}

/// A value shared between a test and the tasks it starts.
final class Shared<Value: Sendable>: Sendable {
    private let storage: Mutex<Value>
    init(_ value: Value) { storage = Mutex(value) }
    func withLock<Result: Sendable>(_ body: (inout Value) -> Result) -> Result { storage.withLock { body(&$0) } }
}
