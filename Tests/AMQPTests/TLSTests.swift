import AMQP
import Foundation
import Testing

/// `amqps://` against a broker node of the test's own with a TLS listener that requires client
/// certificates: certificates made with `openssl` for the run, the node started by `scripts/broker`.
@Suite("AMQP over TLS")
struct TLSTests {
    @Test("a TLS round trip works; plain AMQP, an unknown CA, a wrong host name and a missing client certificate are refused, each saying why")
    func tlsConnections() async throws {
        try await TLSTestBroker.with { broker in
            // Round trip: declare, confirmed publish, consume, over TLS with a client certificate.
            let connection = try await AMQPConnection.connect(
                to: broker.url(), configuration: AMQPConnectionConfiguration(connectionName: "test-tls", reconnect: .disabled))
            let queue = TestBroker.uniqueName("tls")
            _ = try await connection.declare(AMQPQueue(name: queue, durable: false, exclusive: true))
            let body = patternBytes(count: 100_000, seed: 7)
            try await connection.publishConfirmed(AMQPMessage(body: body), routingKey: queue)
            let consumer = try await connection.consume(queue: queue)
            var received: [UInt8]? = nil
            for try await delivery in consumer {
                received = delivery.body
                delivery.ack()
                break
            }
            #expect(received == body, "the message came back intact over TLS")
            await connection.close()

            let plain = try AMQPURL("amqp://guest:guest@localhost:\(broker.tlsPort)/%2F")
            await expectRefused(plain, saying: "if this port expects TLS, use amqps://")
            await expectRefused(
                try broker.url(caFile: broker.file("other-ca.pem")), saying: "not signed by a trusted CA (check cacertfile)")
            await expectRefused(try broker.url(host: "127.0.0.1"), saying: "does not name host '127.0.0.1'")
            await expectRefused(try broker.url(withClientCertificate: false), saying: "require a client certificate")
            await expectRefused(
                try broker.url(caFile: broker.file("missing.pem")), saying: "cacertfile: cannot load CA certificates from")
        }
    }

    /// Connecting to `url` must fail with `connectionFailed` whose reason contains `text`.
    private func expectRefused(_ url: AMQPURL, saying text: String) async {
        do {
            let connection = try await AMQPConnection.connect(
                to: url, configuration: AMQPConnectionConfiguration(connectionName: "test-tls-refused", reconnect: .disabled))
            await connection.close()
            Issue.record("\(url) connected; expected a refusal saying '\(text)'")
        } catch {
            guard case .connectionFailed(_, let reason) = error else {
                Issue.record("\(url): expected connectionFailed, got \(error)")
                return
            }
            #expect(reason.contains(text), "\(url): \(reason)")
        }
    }
}

/// A private RabbitMQ node with a TLS listener (client certificates required), its certificates,
/// and the URLs to reach it.
struct TLSTestBroker {
    let directory: URL
    let tlsPort: Int
    let environment: [String: String]

    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    func file(_ name: String) -> String { directory.appendingPathComponent(name).path }

    func url(host: String = "localhost", caFile: String? = nil, withClientCertificate: Bool = true) throws -> AMQPURL {
        var query = "cacertfile=\(caFile ?? file("ca.pem"))"
        if withClientCertificate { query += "&certfile=\(file("client.pem"))&keyfile=\(file("client.key"))" }
        return try AMQPURL("amqps://guest:guest@\(host):\(tlsPort)/%2F?\(query)")
    }

    /// Makes the certificates, starts the node, runs `body`, and stops the node whatever happens.
    static func with(_ body: (TLSTestBroker) async throws -> Void) async throws {
        let directory = URL(fileURLWithPath: NSTemporaryDirectory())
            .appendingPathComponent("hyperion-tls-test-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try await makeCertificates(in: directory)
        let ports = try freePorts(3)
        let environment = [
            "HYPERION_BROKER_NODE": "hyperion-tls-\(ports[0])@localhost",
            "HYPERION_BROKER_PORT": "\(ports[0])",
            "HYPERION_BROKER_DIST_PORT": "\(ports[1])",
            "HYPERION_BROKER_DIR": directory.appendingPathComponent("node").path,
            "HYPERION_BROKER_TLS_PORT": "\(ports[2])",
            "HYPERION_BROKER_TLS_CA": directory.appendingPathComponent("ca.pem").path,
            "HYPERION_BROKER_TLS_CERT": directory.appendingPathComponent("server.pem").path,
            "HYPERION_BROKER_TLS_KEY": directory.appendingPathComponent("server.key").path,
            "HYPERION_BROKER_TLS_REQUIRE_CLIENT_CERT": "1",
        ]
        let broker = TLSTestBroker(directory: directory, tlsPort: ports[2], environment: environment)
        try await runBroker("start", environment: environment)
        var failure: (any Error)? = nil
        do { try await body(broker) } catch { failure = error }
        try? await runBroker("stop", environment: environment)
        if let failure { throw failure }
    }

    /// A CA, a broker certificate for `localhost` signed by it, a client certificate signed by it,
    /// and an unrelated CA.
    private static func makeCertificates(in directory: URL) async throws {
        func openssl(_ arguments: [String]) async throws {
            try await run("/usr/bin/openssl", arguments, directory: directory)
        }
        func newCA(_ name: String, subject: String) async throws {
            try await openssl([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", subject,
                "-keyout", "\(name).key", "-out", "\(name).pem",
            ])
        }
        func signed(_ name: String, subject: String, extensions: String) async throws {
            try await openssl(["req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", "\(name).key", "-out", "\(name).csr"])
            try extensions.write(to: directory.appendingPathComponent("\(name).ext"), atomically: true, encoding: .utf8)
            try await openssl([
                "x509", "-req", "-in", "\(name).csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-days", "2", "-extfile", "\(name).ext", "-out", "\(name).pem",
            ])
        }
        try await newCA("ca", subject: "/CN=Hyperion test CA")
        try await newCA("other-ca", subject: "/CN=Unrelated CA")
        try await signed("server", subject: "/CN=localhost", extensions: "subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n")
        try await signed("client", subject: "/CN=hyperion-test-client", extensions: "extendedKeyUsage=clientAuth\n")
    }

    struct CommandFailed: Error, CustomStringConvertible {
        let description: String
    }

    private static func run(
        _ executable: String, _ arguments: [String], environment: [String: String] = [:], directory: URL? = nil
    ) async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        if let directory { process.currentDirectoryURL = directory }
        // A file, not a pipe: the broker started in the background keeps its standard error open.
        let errorsPath = NSTemporaryDirectory() + "hyperion-tls-command-\(UInt32.random(in: 0...UInt32.max)).err"
        _ = FileManager.default.createFile(atPath: errorsPath, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: errorsPath) }
        process.standardError = FileHandle(forWritingAtPath: errorsPath)
        process.standardOutput = FileHandle.nullDevice
        let status: Int32 = try await withCheckedThrowingContinuation { continuation in
            process.terminationHandler = { continuation.resume(returning: $0.terminationStatus) }
            do { try process.run() } catch { continuation.resume(throwing: error) }
        }
        guard status == 0 else {
            let printed = (try? String(contentsOfFile: errorsPath, encoding: .utf8)) ?? ""
            throw CommandFailed(description: "\(executable) \(arguments.joined(separator: " ")) exited \(status): \(printed)")
        }
    }

    /// `scripts/broker start|stop` through `system`: Foundation's `Process` learns of a child's exit
    /// through a descriptor the child inherits, and the broker started in the background keeps it
    /// open, so the exit would never be seen.
    private static func runBroker(_ command: String, environment: [String: String]) async throws {
        let assignments = environment.sorted { $0.key < $1.key }.map { "\($0.key)='\($0.value)'" }.joined(separator: " ")
        let line = "\(assignments) '\(repositoryRoot.appendingPathComponent("scripts/broker").path)' \(command) >/dev/null 2>&1"
        let status: Int32 = await withCheckedContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(returning: system(line)) }
        }
        guard status == 0 else { throw CommandFailed(description: "scripts/broker \(command) failed (status \(status)); see the node's log") }
    }

    /// Ports nothing listens on, below Linux's ephemeral range (32768+), where an outgoing
    /// connection could take a port between this check and the broker's bind.
    private static func freePorts(_ count: Int) throws -> [Int] {
        var ports: [Int] = []
        while ports.count < count {
            let port = Int.random(in: 20_000..<32_000)
            if !ports.contains(port), canBind(port) { ports.append(port) }
        }
        return ports
    }

    private static func canBind(_ port: Int) -> Bool {
        let socketFD = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socketFD >= 0 else { return false }
        defer { close(socketFD) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr = in_addr(s_addr: inet_addr("127.0.0.1"))
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(socketFD, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }
}
