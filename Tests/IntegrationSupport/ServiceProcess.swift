import AMQP
import Foundation
import JSON
import Messages
import Synchronization

/// One of Hyperion's executables run as a user runs it, against a virtual host of the private
/// test broker that only its test uses (the broker objects have fixed names).
public final class ServiceProcess: Sendable {
    public struct MissingBinary: Error, CustomStringConvertible {
        let path: String
        public var description: String {
            "\(path) not found: build it beside the tests (swift build --build-tests builds every product) or set HYPERION_BIN_DIR"
        }
    }

    /// The executable's name, for messages.
    public let name: String

    private let process: Process
    private let logLines = Locked<[String]>([])
    private let exitStatus = Locked<Int32?>(nil)

    /// Starts executable `name` with `arguments`; its broker is `amqpURL` and every other
    /// HYPERION_* variable of the test's environment is removed, so only the arguments (and
    /// `environment`, set last) configure it.
    public init(
        _ name: String, arguments: [String], amqpURL: String, logLevel: String = "debug", environment extra: [String: String] = [:]
    ) throws {
        self.name = name
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try Self.binaryPath(name))
        process.arguments = arguments
        process.currentDirectoryURL = TestPaths.packageRoot
        var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("HYPERION_") }
        environment["HYPERION_AMQP_URL"] = amqpURL
        environment["HYPERION_LOG_LEVEL"] = logLevel
        environment.merge(extra) { _, new in new }
        process.environment = environment
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        self.process = process
        let lines = logLines
        let pending = Locked<[UInt8]>([])
        errors.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            guard !data.isEmpty else {
                handle.readabilityHandler = nil
                return
            }
            pending.withLock { buffer in
                buffer.append(contentsOf: data)
                while let newline = buffer.firstIndex(of: 10) {
                    let line = String(decoding: buffer[..<newline], as: UTF8.self)
                    buffer.removeSubrange(...newline)
                    lines.withLock { $0.append(line) }
                }
            }
        }
        let status = exitStatus
        process.terminationHandler = { finished in status.withLock { $0 = finished.terminationStatus } }
        try process.run()
    }

    deinit {
        if process.isRunning { process.terminate() }
    }

    /// The executable beside the test bundle (same build folder), or in `HYPERION_BIN_DIR`.
    public static func binaryPath(_ name: String) throws -> String {
        if let directory = ProcessInfo.processInfo.environment["HYPERION_BIN_DIR"] { return directory + "/" + name }
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var directory = URL(fileURLWithPath: executable).deletingLastPathComponent()
        while directory.path.contains(".xctest") { directory.deleteLastPathComponent() }
        let path = directory.appendingPathComponent(name).path
        guard FileManager.default.isExecutableFile(atPath: path) else { throw MissingBinary(path: path) }
        return path
    }

    /// Everything the process has logged so far.
    public var log: String { logLines.withLock { $0.joined(separator: "\n") } }

    public var isRunning: Bool { exitStatus.withLock { $0 } == nil }

    /// The operating system's id of the process, e.g. to read `/proc/<pid>/status`.
    public var processID: Int32 { process.processIdentifier }

    /// Sends SIGKILL: the process dies without any chance to clean up.
    public func kill() {
        Foundation.kill(process.processIdentifier, SIGKILL)
    }

    /// Sends SIGTERM and waits for the exit status (nil if it did not exit in time).
    public func terminate(timeoutSeconds: Double = 10) async -> Int32? {
        process.terminate()
        return await waitForExit(timeoutSeconds: timeoutSeconds)
    }

    public func waitForExit(timeoutSeconds: Double) async -> Int32? {
        await eventually(timeoutSeconds: timeoutSeconds) { self.exitStatus.withLock { $0 } }
    }

    /// Waits until the log has a line containing `text`; returns that line.
    public func logLine(containing text: String, timeoutSeconds: Double = 10) async -> String? {
        await eventually(timeoutSeconds: timeoutSeconds) { self.logLines.withLock { $0.first { $0.contains(text) } } }
    }

    /// Sends SIGUSR1, on which every Hyperion service logs its C heap's statistics, and returns
    /// the bytes in use that the new line reports (nil if no line came in time).
    public func heapInUseBytes(timeoutSeconds: Double = 10) async -> Int? {
        let marker = "heap_in_use_bytes="
        let before = logLines.withLock { $0.count { $0.contains(marker) } }
        Foundation.kill(process.processIdentifier, SIGUSR1)
        return await eventually(timeoutSeconds: timeoutSeconds) {
            self.logLines.withLock { lines -> Int? in
                let reports = lines.filter { $0.contains(marker) }
                guard reports.count > before, let line = reports.last, let start = line.range(of: marker) else { return nil }
                return Int(line[start.upperBound...].prefix { $0.isNumber })
            }
        }
    }
}

/// Polls `probe` until it yields a value or the time is up.
public func eventually<Value: Sendable>(timeoutSeconds: Double, _ probe: @Sendable () -> Value?) async -> Value? {
    let deadline = Date().addingTimeInterval(timeoutSeconds)
    while true {
        if let value = probe() { return value }
        if Date() > deadline { return nil }
        try? await Task.sleep(for: .milliseconds(20))
    }
}

public enum TestPaths {
    public static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    public static let localTopology = packageRoot.appendingPathComponent("examples/local-topology.json").path

    /// The real model file (`scripts/fetch-model` puts it there); a missing file fails the test.
    public static func modelFile() throws -> String {
        let path = packageRoot.appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf").path
        guard FileManager.default.fileExists(atPath: path) else {
            throw Missing(description: "\(path) is missing: run scripts/fetch-model")
        }
        return path
    }

    /// The model file's sha256 as the fixtures record it.
    public static func modelSHA256() throws -> String {
        let directory = ProcessInfo.processInfo.environment["HYPERION_FIXTURES"]
            .map { URL(fileURLWithPath: $0) } ?? packageRoot.appendingPathComponent("fixtures")
        let text = try String(contentsOf: directory.appendingPathComponent("smollm2-reference.json"), encoding: .utf8)
        guard let sha = try JSONValue.parse(text)["model"]?["sha256"]?.stringValue else {
            throw Missing(description: "smollm2-reference.json has no model.sha256")
        }
        return sha
    }

    public struct Missing: Error, CustomStringConvertible {
        public let description: String
        public init(description: String) { self.description = description }
    }
}

/// A virtual host of the private test broker for one test: created with full rights for the
/// test URL's user, deleted at the end. Missing configuration fails the test, never skips it.
public struct TestVirtualHost {
    struct NotConfigured: Error, CustomStringConvertible {
        let variable: String
        var description: String {
            "\(variable) is not set: start the private broker with `scripts/broker start` and export "
                + "HYPERION_TEST_AMQP_URL=$(scripts/broker url) HYPERION_TEST_RABBITMQ_NODE=$(scripts/broker node) "
                + "(scripts/test does both)"
        }
    }

    public let name: String
    public let url: AMQPURL
    private let node: String

    public static func create(prefix: String = "test") async throws -> TestVirtualHost {
        let environment = ProcessInfo.processInfo.environment
        guard let text = environment["HYPERION_TEST_AMQP_URL"], !text.isEmpty else {
            throw NotConfigured(variable: "HYPERION_TEST_AMQP_URL")
        }
        guard let node = environment["HYPERION_TEST_RABBITMQ_NODE"], !node.isEmpty else {
            throw NotConfigured(variable: "HYPERION_TEST_RABBITMQ_NODE")
        }
        var url = try AMQPURL(text)
        let name = "\(prefix)-\(UInt32.random(in: 0...UInt32.max))"
        url.virtualHost = name
        let host = TestVirtualHost(name: name, url: url, node: node)
        try await host.rabbitmqctl(["add_vhost", name])
        try await host.rabbitmqctl(["set_permissions", "-p", name, url.user, ".*", ".*", ".*"])
        return host
    }

    /// The URL with its password, as the planner reads it from HYPERION_AMQP_URL.
    public var urlText: String {
        func encoded(_ text: String) -> String {
            text.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? text
        }
        return "amqp://\(encoded(url.user)):\(encoded(url.password))@\(url.host):\(url.port)/\(encoded(name))"
    }

    public func delete() async {
        try? await rabbitmqctl(["delete_vhost", name])
    }

    public func closeAllConnections() async throws {
        try await rabbitmqctl(["close_all_connections", "-p", name, "test: connection closed on purpose"])
    }

    public func connect(_ label: String) async throws -> AMQPConnection {
        try await AMQPConnection.connect(
            to: url,
            configuration: AMQPConnectionConfiguration(
                connectionName: "test-\(label)", heartbeatSeconds: 10, reconnect: .init(maxDelaySeconds: 0.5)))
    }

    public func rabbitmqctl(_ arguments: [String]) async throws {
        let process = Process()
        let root = URL(fileURLWithPath: "/usr/sbin/rabbitmqctl")
        process.executableURL = getuid() == 0 ? root : URL(fileURLWithPath: "/usr/lib/rabbitmq/bin/rabbitmqctl")
        process.arguments = ["-n", node, "-q"] + arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        let status: Int32 = try await withCheckedThrowingContinuation { continuation in
            process.terminationHandler = { continuation.resume(returning: $0.terminationStatus) }
            do { try process.run() } catch { continuation.resume(throwing: error) }
        }
        guard status == 0 else { throw TestPaths.Missing(description: "rabbitmqctl \(arguments) exited with \(status)") }
    }
}

/// Messages a queue received, kept for the test to wait on.
public final class Inbox: Sendable {
    private let messages = Locked<[AMQPDelivery]>([])

    /// Consumes `queue` on `connection` into the inbox (auto-ack).
    public init(queue: String, on connection: AMQPConnection) async throws {
        let consumer = try await connection.consume(queue: queue, noAck: true)
        let messages = messages
        Task {
            do {
                for try await delivery in consumer { messages.withLock { $0.append(delivery) } }
            } catch {}
        }
    }

    public var all: [AMQPDelivery] { messages.withLock { $0 } }

    /// Waits for a message satisfying `predicate`.
    public func first(timeoutSeconds: Double = 10, where predicate: @escaping @Sendable (AMQPDelivery) -> Bool) async -> AMQPDelivery? {
        await eventually(timeoutSeconds: timeoutSeconds) { self.messages.withLock { $0.first(where: predicate) } }
    }
}

/// A value shared between a test and the tasks and handlers it starts.
public final class Locked<Value: Sendable>: Sendable {
    private let storage: Mutex<Value>

    public init(_ value: Value) { storage = Mutex(value) }

    public func withLock<Result: Sendable>(_ body: (inout Value) -> Result) -> Result { storage.withLock { body(&$0) } }
}
