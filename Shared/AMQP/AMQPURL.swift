/// Where and how to reach a broker, parsed from `amqp[s]://user:pass@host:port/vhost[?tls options]`.
///
/// Follows RabbitMQ's URI spec: user, password and vhost are percent-decoded; an absent vhost means
/// `/`, an empty one (`amqp://host/`) means the empty vhost name; default credentials `guest`/`guest`
/// and ports 5672 (`amqp`) / 5671 (`amqps`). TLS settings travel in the query with RabbitMQ's
/// parameter names (`cacertfile`, `certfile`, `keyfile`, `verify`), so every executable that takes
/// a broker URL (flag or `HYPERION_AMQP_URL`) takes them the same way.
public struct AMQPURL: Sendable, Hashable, CustomStringConvertible {
    /// The environment variable services read their broker URL from.
    public static let environmentVariable = "HYPERION_AMQP_URL"

    public var isTLS: Bool
    public var user: String
    public var password: String
    public var host: String
    public var port: Int
    public var virtualHost: String
    /// Certificates for `amqps`; empty (system CA bundle, no client certificate) by default.
    public var tls: AMQPTLSOptions

    public init(
        isTLS: Bool = false, user: String = "guest", password: String = "guest",
        host: String = "localhost", port: Int? = nil, virtualHost: String = "/", tls: AMQPTLSOptions = AMQPTLSOptions()
    ) {
        self.isTLS = isTLS
        self.user = user
        self.password = password
        self.host = host
        self.port = port ?? (isTLS ? 5671 : 5672)
        self.virtualHost = virtualHost
        self.tls = tls
    }

    /// Parses a URL, naming the part that is wrong when it cannot.
    public init(_ text: String) throws(AMQPError) {
        func bad(_ reason: String) -> AMQPError { .invalidURL(url: AMQPURL.redacted(text), reason: reason) }
        var rest: Substring
        if text.hasPrefix("amqp://") {
            isTLS = false
            rest = text.dropFirst("amqp://".count)
        } else if text.hasPrefix("amqps://") {
            isTLS = true
            rest = text.dropFirst("amqps://".count)
        } else {
            throw bad("expected scheme amqp:// or amqps://")
        }
        var query: Substring = ""
        if let mark = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: mark)...]
            rest = rest[..<mark]
        }

        var path: Substring? = nil
        if let slash = rest.firstIndex(of: "/") {
            path = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
        }
        user = "guest"
        password = "guest"
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at]
            rest = rest[rest.index(after: at)...]
            let parts = credentials.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            guard let decodedUser = AMQPURL.percentDecoded(parts[0]) else {
                throw bad("user: invalid percent-encoding")
            }
            user = decodedUser
            if parts.count == 2 {
                guard let decodedPassword = AMQPURL.percentDecoded(parts[1]) else {
                    throw bad("password: invalid percent-encoding")
                }
                password = decodedPassword
            }
        }

        var hostPart = rest
        var portText: Substring? = nil
        if hostPart.hasPrefix("[") {
            guard let close = hostPart.firstIndex(of: "]") else { throw bad("host: unclosed '[' in IPv6 address") }
            let after = hostPart[hostPart.index(after: close)...]
            hostPart = hostPart[hostPart.index(after: hostPart.startIndex)..<close]
            if after.hasPrefix(":") { portText = after.dropFirst() } else if !after.isEmpty {
                throw bad("host: unexpected text after IPv6 address")
            }
        } else if let colon = hostPart.lastIndex(of: ":") {
            portText = hostPart[hostPart.index(after: colon)...]
            hostPart = hostPart[..<colon]
        }
        guard let decodedHost = AMQPURL.percentDecoded(hostPart) else { throw bad("host: invalid percent-encoding") }
        host = decodedHost.isEmpty ? "localhost" : decodedHost
        if let portText {
            guard let value = Int(portText), (1...65535).contains(value) else {
                throw bad("port: expected a number 1...65535, got '\(portText)'")
            }
            port = value
        } else {
            port = isTLS ? 5671 : 5672
        }
        if let path {
            guard !path.contains("/") else { throw bad("vhost: an unencoded '/' (write %2F for the default vhost)") }
            guard let decoded = AMQPURL.percentDecoded(path) else { throw bad("vhost: invalid percent-encoding") }
            virtualHost = decoded
        } else {
            virtualHost = "/"
        }
        tls = try AMQPTLSOptions(query: query, isTLS: isTLS, bad: bad)
    }

    /// Reads `HYPERION_AMQP_URL` (or another variable) from an environment dictionary.
    public static func fromEnvironment(
        _ environment: [String: String], variable: String = AMQPURL.environmentVariable
    ) throws(AMQPError) -> AMQPURL {
        guard let text = environment[variable], !text.isEmpty else {
            throw .invalidURL(url: "", reason: "\(variable) is not set")
        }
        return try AMQPURL(text)
    }

    /// The URL with the password hidden, for logs and error messages (certificate paths are shown:
    /// they are not secret and tell an operator which files were used).
    public var description: String {
        let scheme = isTLS ? "amqps" : "amqp"
        let shownHost = host.contains(":") ? "[\(host)]" : host
        let query = tls.query.isEmpty ? "" : "?" + tls.query
        return "\(scheme)://\(AMQPURL.percentEncoded(user)):***@\(shownHost):\(port)/\(AMQPURL.percentEncoded(virtualHost))\(query)"
    }

    /// URL text with its password replaced by `***`, for messages about a URL that may not parse.
    public static func redacted(_ text: String) -> String {
        let beforeQuery = text[..<(text.firstIndex(of: "?") ?? text.endIndex)]
        guard let colonSlash = text.firstIndex(of: ":"), text[colonSlash...].hasPrefix("://"),
            let at = beforeQuery.lastIndex(of: "@")
        else { return text }
        let start = text.index(colonSlash, offsetBy: 3)
        guard at > start else { return text }
        let credentials = text[start..<at]
        guard let colon = credentials.firstIndex(of: ":") else { return text }
        return String(text[..<colon]) + ":***" + String(text[at...])
    }

    static func percentDecoded(_ text: Substring) -> String? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%") {
                guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else {
                    return nil
                }
                bytes.append(high << 4 | low)
            } else {
                bytes.append(byte)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    /// `keepingSlashes` leaves `/` as it is (a query value may hold it; a vhost may not).
    static func percentEncoded(_ text: String, keepingSlashes: Bool = false) -> String {
        var result = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "~"):
                result.unicodeScalars.append(Unicode.Scalar(byte))
            case UInt8(ascii: "/") where keepingSlashes:
                result.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let digits = Array("0123456789ABCDEF".utf8)
                result += "%"
                result.unicodeScalars.append(Unicode.Scalar(digits[Int(byte >> 4)]))
                result.unicodeScalars.append(Unicode.Scalar(digits[Int(byte & 0xF)]))
            }
        }
        return result
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
