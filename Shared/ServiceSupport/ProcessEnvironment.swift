import Logging

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// What a Hyperion process reads from its environment: every flag's default comes from here, so
/// compose files and scripts configure services without command lines.
public enum ProcessEnvironment {
    public static func string(_ name: String) -> String? {
        guard let raw = getenv(name) else { return nil }
        let value = String(cString: raw)
        return value.isEmpty ? nil : value
    }

    /// The broker URL: `HYPERION_AMQP_URL`, else the one `scripts/up` wrote to `.run/amqp_url`,
    /// else a local broker with the developer's loopback `guest` account.
    public static func amqpURL() -> String {
        if let url = string("HYPERION_AMQP_URL") { return url }
        if let file = fopen(".run/amqp_url", "r") {
            defer { fclose(file) }
            var buffer = [CChar](repeating: 0, count: 4096)
            if fgets(&buffer, Int32(buffer.count), file) != nil {
                let line = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                let trimmed = line.trimmingCharacters(in: " \n\r\t")
                if !trimmed.isEmpty { return trimmed }
            }
        }
        return "amqp://guest:guest@localhost:5672/"
    }

    /// `<hostname>-<random suffix>`: unique per process, so scaled replicas never collide.
    public static func defaultNodeID() -> String {
        var name = [CChar](repeating: 0, count: 256)
        let host = gethostname(&name, name.count) == 0
            ? String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : "node"
        let suffix = String(UInt32.random(in: 0...UInt32.max), radix: 36)
        return "\(sanitizedID(host))-\(suffix)"
    }

    /// This process's default node id, chosen once: every reader sees the same one.
    public static let processNodeID = defaultNodeID()

    /// Node ids become part of queue names and routing keys: keep them to `[A-Za-z0-9_-]`.
    public static func sanitizedID(_ text: String) -> String {
        String(text.map { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") ? $0 : "-" })
    }

    /// A fresh random UUID string (process instances, scheduler keys).
    public static func uuid() -> String {
        var bytes = (0..<16).map { _ in UInt8.random(in: 0...255) }
        bytes[6] = (bytes[6] & 0x0F) | 0x40
        bytes[8] = (bytes[8] & 0x3F) | 0x80
        let hex = bytes.map { String($0, radix: 16).leftPadded(to: 2) }.joined()
        let parts = [hex.prefix(8), hex.dropFirst(8).prefix(4), hex.dropFirst(12).prefix(4), hex.dropFirst(16).prefix(4), hex.dropFirst(20)]
        return parts.joined(separator: "-")
    }

    /// Sets up logging once per process, to standard error: at `level`, else from
    /// `HYPERION_LOG_LEVEL`, else info.
    public static func bootstrapLogging(level given: Logger.Level? = nil) {
        let level = given ?? string("HYPERION_LOG_LEVEL").flatMap { Logger.Level(rawValue: $0.lowercased()) } ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }
}

/// Clocks, injected into the pure cores as plain seconds.
public enum Clock {
    /// Seconds on a monotonic clock: for durations and timeouts.
    public static func monotonicSeconds() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }

    /// CPU seconds this process has used, all threads together: compute time that a busy core
    /// shared with other processes does not inflate.
    public static func processCPUSeconds() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }

    /// Seconds since the Unix epoch: for timestamps other processes read.
    public static func wallSeconds() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }
}

extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }

    func trimmingCharacters(in set: String) -> String {
        var scalars = Substring(self)
        while let first = scalars.first, set.contains(first) { scalars.removeFirst() }
        while let last = scalars.last, set.contains(last) { scalars.removeLast() }
        return String(scalars)
    }
}

/// Writes a line to standard error (for fatal start-up errors, before or without a logger).
public func printError(_ message: String) {
    let line = message.hasSuffix("\n") ? message : message + "\n"
    _ = line.withCString { write(2, $0, strlen($0)) }
}
