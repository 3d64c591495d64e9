import CRabbitMQ

// Conversions between the Swift value types and rabbitmq-c's C structures. Everything here runs on
// a connection's own thread; C memory comes from an `Arena` that outlives the call using it.

/// Scratch memory for building C structures (strings, tables) for one rabbitmq-c call.
///
/// `amqp_cstring_bytes` on a Swift string would point at a temporary; copying into a pool owned
/// here keeps every pointer valid until `reset()`.
final class Arena {
    private let pool: UnsafeMutablePointer<amqp_pool_t>

    init(pageSize: Int = 16 * 1024) {
        pool = .allocate(capacity: 1)
        init_amqp_pool(pool, pageSize)
    }

    deinit {
        empty_amqp_pool(pool)
        pool.deallocate()
    }

    /// Frees everything handed out, keeping the pages for reuse.
    func reset() { recycle_amqp_pool(pool) }

    func bytes(_ text: String) -> amqp_bytes_t {
        var text = text
        return text.withUTF8 { bytes(UnsafeRawBufferPointer($0)) }
    }

    func bytes(_ source: UnsafeRawBufferPointer) -> amqp_bytes_t {
        guard source.count > 0, let base = source.baseAddress, let copy = amqp_pool_alloc(pool, source.count) else {
            return amqp_bytes_t(len: 0, bytes: nil)
        }
        copy.copyMemory(from: base, byteCount: source.count)
        return amqp_bytes_t(len: source.count, bytes: copy)
    }

    func bytes(_ source: [UInt8]) -> amqp_bytes_t {
        source.withUnsafeBytes { bytes($0) }
    }

    private func allocate<T>(_ type: T.Type, count: Int) -> UnsafeMutablePointer<T>? {
        guard count > 0 else { return nil }
        return amqp_pool_alloc(pool, MemoryLayout<T>.stride * count)?.bindMemory(to: T.self, capacity: count)
    }

    func table(_ table: AMQPTable) -> amqp_table_t {
        guard !table.isEmpty, let entries = allocate(amqp_table_entry_t.self, count: table.count) else {
            return amqp_table_t(num_entries: 0, entries: nil)
        }
        for (index, entry) in table.entries.enumerated() {
            (entries + index).initialize(to: amqp_table_entry_t(key: bytes(entry.key), value: field(entry.value)))
        }
        return amqp_table_t(num_entries: Int32(table.count), entries: entries)
    }

    func field(_ value: AMQPFieldValue) -> amqp_field_value_t {
        var result = amqp_field_value_t()
        func kind(_ code: Character) { result.kind = code.asciiValue ?? 0 }
        switch value {
        case let .bool(value): kind("t"); result.value.boolean = value ? 1 : 0
        case let .int8(value): kind("b"); result.value.i8 = value
        case let .uint8(value): kind("B"); result.value.u8 = value
        case let .int16(value): kind("s"); result.value.i16 = value
        case let .uint16(value): kind("u"); result.value.u16 = value
        case let .int32(value): kind("I"); result.value.i32 = value
        case let .uint32(value): kind("i"); result.value.u32 = value
        case let .int64(value): kind("l"); result.value.i64 = value
        case let .float(value): kind("f"); result.value.f32 = value
        case let .double(value): kind("d"); result.value.f64 = value
        case let .decimal(value):
            kind("D"); result.value.decimal = amqp_decimal_t(decimals: value.scale, value: value.value)
        case let .string(value): kind("S"); result.value.bytes = bytes(value)
        case let .bytes(value): kind("x"); result.value.bytes = bytes(value)
        case let .array(values):
            kind("A")
            let elements = allocate(amqp_field_value_t.self, count: values.count)
            for (index, element) in values.enumerated() { elements.map { ($0 + index).initialize(to: field(element)) } }
            result.value.array = amqp_array_t(num_entries: Int32(elements == nil ? 0 : values.count), entries: elements)
        case let .table(value): kind("F"); result.value.table = table(value)
        case let .timestamp(value): kind("T"); result.value.u64 = value
        case .void: kind("V")
        }
        return result
    }

    func properties(_ properties: AMQPProperties) -> amqp_basic_properties_t {
        var result = amqp_basic_properties_t()
        var flags: UInt32 = 0
        func set(_ value: String?, _ flag: Int32, _ keyPath: WritableKeyPath<amqp_basic_properties_t, amqp_bytes_t>) {
            guard let value else { return }
            flags |= UInt32(flag)
            result[keyPath: keyPath] = bytes(value)
        }
        set(properties.contentType, AMQP_BASIC_CONTENT_TYPE_FLAG, \.content_type)
        set(properties.contentEncoding, AMQP_BASIC_CONTENT_ENCODING_FLAG, \.content_encoding)
        set(properties.correlationID, AMQP_BASIC_CORRELATION_ID_FLAG, \.correlation_id)
        set(properties.replyTo, AMQP_BASIC_REPLY_TO_FLAG, \.reply_to)
        set(properties.expiration, AMQP_BASIC_EXPIRATION_FLAG, \.expiration)
        set(properties.messageID, AMQP_BASIC_MESSAGE_ID_FLAG, \.message_id)
        set(properties.type, AMQP_BASIC_TYPE_FLAG, \.type)
        set(properties.userID, AMQP_BASIC_USER_ID_FLAG, \.user_id)
        set(properties.appID, AMQP_BASIC_APP_ID_FLAG, \.app_id)
        if let headers = properties.headers {
            flags |= UInt32(AMQP_BASIC_HEADERS_FLAG)
            result.headers = table(headers)
        }
        if let mode = properties.deliveryMode {
            flags |= UInt32(AMQP_BASIC_DELIVERY_MODE_FLAG)
            result.delivery_mode = mode
        }
        if let priority = properties.priority {
            flags |= UInt32(AMQP_BASIC_PRIORITY_FLAG)
            result.priority = priority
        }
        if let timestamp = properties.timestamp {
            flags |= UInt32(AMQP_BASIC_TIMESTAMP_FLAG)
            result.timestamp = timestamp
        }
        result._flags = flags
        return result
    }
}

// MARK: - C → Swift (copies; nothing keeps pointing into rabbitmq-c's pools)

extension amqp_bytes_t {
    var string: String {
        guard len > 0, let bytes else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: bytes, count: len), as: UTF8.self)
    }

    var array: [UInt8] {
        guard len > 0, let bytes else { return [] }
        return Array(UnsafeRawBufferPointer(start: bytes, count: len))
    }
}

extension AMQPTable {
    init(_ table: amqp_table_t) {
        var entries: [(key: String, value: AMQPFieldValue)] = []
        if let base = table.entries, table.num_entries > 0 {
            entries.reserveCapacity(Int(table.num_entries))
            for index in 0..<Int(table.num_entries) {
                entries.append((key: base[index].key.string, value: AMQPFieldValue(base[index].value)))
            }
        }
        self.init(entries)
    }
}

extension AMQPFieldValue {
    init(_ field: amqp_field_value_t) {
        switch Character(Unicode.Scalar(field.kind)) {
        case "t": self = .bool(field.value.boolean != 0)
        case "b": self = .int8(field.value.i8)
        case "B": self = .uint8(field.value.u8)
        case "s": self = .int16(field.value.i16)
        case "u": self = .uint16(field.value.u16)
        case "I": self = .int32(field.value.i32)
        case "i": self = .uint32(field.value.u32)
        case "l": self = .int64(field.value.i64)
        case "L": self = .int64(Int64(bitPattern: field.value.u64))
        case "f": self = .float(field.value.f32)
        case "d": self = .double(field.value.f64)
        case "D": self = .decimal(AMQPDecimal(scale: field.value.decimal.decimals, value: field.value.decimal.value))
        case "S": self = .string(field.value.bytes.string)
        case "x": self = .bytes(field.value.bytes.array)
        case "A":
            let array = field.value.array
            var values: [AMQPFieldValue] = []
            if let base = array.entries, array.num_entries > 0 {
                values = (0..<Int(array.num_entries)).map { AMQPFieldValue(base[$0]) }
            }
            self = .array(values)
        case "F": self = .table(AMQPTable(field.value.table))
        case "T": self = .timestamp(field.value.u64)
        default: self = .void
        }
    }
}

extension AMQPProperties {
    init(_ properties: amqp_basic_properties_t) {
        self.init()
        let flags = properties._flags
        func has(_ flag: Int32) -> Bool { flags & UInt32(flag) != 0 }
        if has(AMQP_BASIC_CONTENT_TYPE_FLAG) { contentType = properties.content_type.string }
        if has(AMQP_BASIC_CONTENT_ENCODING_FLAG) { contentEncoding = properties.content_encoding.string }
        if has(AMQP_BASIC_HEADERS_FLAG) { headers = AMQPTable(properties.headers) }
        if has(AMQP_BASIC_DELIVERY_MODE_FLAG) { deliveryMode = properties.delivery_mode }
        if has(AMQP_BASIC_PRIORITY_FLAG) { priority = properties.priority }
        if has(AMQP_BASIC_CORRELATION_ID_FLAG) { correlationID = properties.correlation_id.string }
        if has(AMQP_BASIC_REPLY_TO_FLAG) { replyTo = properties.reply_to.string }
        if has(AMQP_BASIC_EXPIRATION_FLAG) { expiration = properties.expiration.string }
        if has(AMQP_BASIC_MESSAGE_ID_FLAG) { messageID = properties.message_id.string }
        if has(AMQP_BASIC_TIMESTAMP_FLAG) { timestamp = properties.timestamp }
        if has(AMQP_BASIC_TYPE_FLAG) { type = properties.type.string }
        if has(AMQP_BASIC_USER_ID_FLAG) { userID = properties.user_id.string }
        if has(AMQP_BASIC_APP_ID_FLAG) { appID = properties.app_id.string }
    }
}

/// Method ids (class << 16 | method) of AMQP 0-9-1; rabbitmq-c's macros for them are casts that
/// Swift does not import.
enum Method {
    static let connectionClose: UInt32 = 0x000A_0032
    static let connectionCloseOK: UInt32 = 0x000A_0033
    static let connectionBlocked: UInt32 = 0x000A_003C
    static let connectionUnblocked: UInt32 = 0x000A_003D
    static let channelOpen: UInt32 = 0x0014_000A
    static let channelOpenOK: UInt32 = 0x0014_000B
    static let channelFlow: UInt32 = 0x0014_0014
    static let channelFlowOK: UInt32 = 0x0014_0015
    static let channelClose: UInt32 = 0x0014_0028
    static let channelCloseOK: UInt32 = 0x0014_0029
    static let exchangeDeclare: UInt32 = 0x0028_000A
    static let exchangeDeclareOK: UInt32 = 0x0028_000B
    static let exchangeDelete: UInt32 = 0x0028_0014
    static let exchangeDeleteOK: UInt32 = 0x0028_0015
    static let exchangeBind: UInt32 = 0x0028_001E
    static let exchangeBindOK: UInt32 = 0x0028_001F
    static let exchangeUnbind: UInt32 = 0x0028_0028
    static let exchangeUnbindOK: UInt32 = 0x0028_0033
    static let queueDeclare: UInt32 = 0x0032_000A
    static let queueDeclareOK: UInt32 = 0x0032_000B
    static let queueBind: UInt32 = 0x0032_0014
    static let queueBindOK: UInt32 = 0x0032_0015
    static let queuePurge: UInt32 = 0x0032_001E
    static let queuePurgeOK: UInt32 = 0x0032_001F
    static let queueDelete: UInt32 = 0x0032_0028
    static let queueDeleteOK: UInt32 = 0x0032_0029
    static let queueUnbind: UInt32 = 0x0032_0032
    static let queueUnbindOK: UInt32 = 0x0032_0033
    static let basicQos: UInt32 = 0x003C_000A
    static let basicQosOK: UInt32 = 0x003C_000B
    static let basicConsume: UInt32 = 0x003C_0014
    static let basicConsumeOK: UInt32 = 0x003C_0015
    static let basicCancel: UInt32 = 0x003C_001E
    static let basicCancelOK: UInt32 = 0x003C_001F
    static let basicReturn: UInt32 = 0x003C_0032
    static let basicDeliver: UInt32 = 0x003C_003C
    static let basicAck: UInt32 = 0x003C_0050
    static let basicReject: UInt32 = 0x003C_005A
    static let basicNack: UInt32 = 0x003C_0078
    static let confirmSelect: UInt32 = 0x0055_000A
    static let confirmSelectOK: UInt32 = 0x0055_000B
}
