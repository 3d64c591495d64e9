/// A value in an AMQP field table (headers, queue arguments, client properties): every type of the
/// 0-9-1 wire format that RabbitMQ accepts.
///
/// RabbitMQ has no unsigned 64-bit field type, so there is none here; a `uint64` needs `.int64`
/// or `.timestamp`.
public enum AMQPFieldValue: Sendable, Hashable {
    case bool(Bool)
    case int8(Int8)
    case uint8(UInt8)
    case int16(Int16)
    case uint16(UInt16)
    case int32(Int32)
    case uint32(UInt32)
    case int64(Int64)
    case float(Float)
    case double(Double)
    case decimal(AMQPDecimal)
    case string(String)
    case bytes([UInt8])
    case array([AMQPFieldValue])
    case table(AMQPTable)
    /// Seconds since the Unix epoch.
    case timestamp(UInt64)
    case void

    public var stringValue: String? { if case let .string(value) = self { value } else { nil } }
    public var boolValue: Bool? { if case let .bool(value) = self { value } else { nil } }
    public var arrayValue: [AMQPFieldValue]? { if case let .array(value) = self { value } else { nil } }
    public var tableValue: AMQPTable? { if case let .table(value) = self { value } else { nil } }
    public var bytesValue: [UInt8]? { if case let .bytes(value) = self { value } else { nil } }

    /// Any integer kind widened to `Int64`, since brokers and other clients pick the width freely.
    public var int64Value: Int64? {
        switch self {
        case let .int8(value): Int64(value)
        case let .uint8(value): Int64(value)
        case let .int16(value): Int64(value)
        case let .uint16(value): Int64(value)
        case let .int32(value): Int64(value)
        case let .uint32(value): Int64(value)
        case let .int64(value): value
        default: nil
        }
    }

    /// Any number as `Double`.
    public var doubleValue: Double? {
        switch self {
        case let .float(value): Double(value)
        case let .double(value): value
        default: int64Value.map(Double.init)
        }
    }
}

/// AMQP's decimal: `value × 10^-scale`.
public struct AMQPDecimal: Sendable, Hashable {
    public var scale: UInt8
    public var value: UInt32
    public init(scale: UInt8, value: UInt32) {
        self.scale = scale
        self.value = value
    }
}

/// An AMQP field table: ordered key/value pairs (order is kept as sent; keys are unique).
public struct AMQPTable: Sendable, Hashable, ExpressibleByDictionaryLiteral, Sequence {
    public private(set) var entries: [(key: String, value: AMQPFieldValue)]

    public init() { entries = [] }

    public init(_ entries: [(key: String, value: AMQPFieldValue)]) {
        self.entries = []
        for (key, value) in entries { self[key] = value }
    }

    public init(dictionaryLiteral elements: (String, AMQPFieldValue)...) {
        self.init(elements.map { (key: $0.0, value: $0.1) })
    }

    public var isEmpty: Bool { entries.isEmpty }
    public var count: Int { entries.count }
    public var keys: [String] { entries.map(\.key) }

    /// Setting `nil` removes the key; setting an existing key replaces its value in place.
    public subscript(key: String) -> AMQPFieldValue? {
        get { entries.first { $0.key == key }?.value }
        set {
            if let index = entries.firstIndex(where: { $0.key == key }) {
                if let newValue { entries[index].value = newValue } else { entries.remove(at: index) }
            } else if let newValue {
                entries.append((key: key, value: newValue))
            }
        }
    }

    public func makeIterator() -> IndexingIterator<[(key: String, value: AMQPFieldValue)]> {
        entries.makeIterator()
    }

    public static func == (lhs: AMQPTable, rhs: AMQPTable) -> Bool {
        lhs.entries.count == rhs.entries.count
            && zip(lhs.entries, rhs.entries).allSatisfy { $0.key == $1.key && $0.value == $1.value }
    }

    public func hash(into hasher: inout Hasher) {
        for (key, value) in entries {
            hasher.combine(key)
            hasher.combine(value)
        }
    }
}
