import JSON

/// Shared decoding rules for versioned JSON messages.
enum Wire {
    enum VersionKey: String, CodingKey { case v }

    /// Refuses a message whose `"v"` is missing or not the version this build speaks, so that the
    /// consumer can dead-letter it with a reason instead of misreading it.
    static func checkVersion(_ decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: VersionKey.self)
        let version = try container.decode(Int.self, forKey: .v)
        guard version == Names.schemaVersion else {
            throw DecodingError.dataCorruptedError(
                forKey: .v, in: container,
                debugDescription: "unsupported schema version \(version) (this build speaks \(Names.schemaVersion))")
        }
    }

    /// Refuses a message whose `"type"` is not the expected one.
    static func checkType<K: CodingKey>(_ container: KeyedDecodingContainer<K>, _ key: K, _ expected: String) throws {
        let type = try container.decode(String.self, forKey: key)
        guard type == expected else {
            throw DecodingError.dataCorruptedError(
                forKey: key, in: container, debugDescription: "expected \"\(expected)\"")
        }
    }

    static func invalid<K: CodingKey>(_ key: K, _ container: KeyedDecodingContainer<K>, _ reason: String) -> DecodingError {
        DecodingError.dataCorruptedError(forKey: key, in: container, debugDescription: reason)
    }
}

/// Why a message was refused, in the form replies and dead letters carry.
public struct MessageError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The field at fault (`messages[2].role`), empty for the message as a whole.
    public var field: String
    /// What is wrong with it.
    public var reason: String

    public init(field: String, reason: String) {
        self.field = field
        self.reason = reason
    }

    public init(_ error: JSONError) {
        self.field = error.path
        self.reason = error.line.map { "line \($0), column \(error.column ?? 0): \(error.message)" } ?? error.message
    }

    public var description: String { field.isEmpty ? reason : "\(field): \(reason)" }
}

/// Decodes a versioned JSON message body, mapping every failure to a `MessageError`.
public func decodeMessage<T: Decodable>(_ type: T.Type, from body: [UInt8]) throws(MessageError) -> T {
    do {
        return try JSONCoding.decode(type, from: body)
    } catch {
        throw MessageError(error)
    }
}

/// Encodes a message as its JSON body bytes.
public func encodeMessage<T: Encodable>(_ message: T) -> [UInt8] {
    // Messages hold only strings, finite numbers and arrays: encoding cannot fail for them; the
    // fallback keeps a bug visible on the wire rather than crashing a service.
    let text = (try? JSONCoding.encode(message)) ?? #"{"v":1,"type":"error","code":"internal","message":"unencodable"}"#
    return Array(text.utf8)
}
