/// Codable on top of `JSONValue`: the one way Hyperion turns its types into JSON and back.
///
/// Keys are taken as the types declare them (no case conversion), so wire names stay visible in
/// the code. Errors name the path of the bad field.
public enum JSONCoding {
    /// Decodes `type` from a JSON text.
    public static func decode<T: Decodable>(_ type: T.Type, from text: String) throws(JSONError) -> T {
        try decode(type, from: JSONValue.parse(text))
    }

    /// Decodes `type` from JSON bytes (a message body or a file's contents).
    public static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws(JSONError) -> T {
        try decode(type, from: JSONValue.parse(bytes: bytes))
    }

    /// Decodes `type` from an already parsed value.
    public static func decode<T: Decodable>(_ type: T.Type, from value: JSONValue) throws(JSONError) -> T {
        do {
            return try T(from: ValueDecoder(value: value, codingPath: []))
        } catch let error as JSONError {
            throw error
        } catch let error as DecodingError {
            throw JSONError(decoding: error)
        } catch {
            throw JSONError(message: "\(error)")
        }
    }

    /// Encodes a value as a JSON text.
    public static func encode<T: Encodable>(_ value: T, pretty: Bool = false) throws(JSONError) -> String {
        try encodeValue(value).serialized(pretty: pretty)
    }

    /// Encodes a value as a `JSONValue`.
    public static func encodeValue<T: Encodable>(_ value: T) throws(JSONError) -> JSONValue {
        if let direct = value as? JSONValue { return direct }
        let box = ValueBox()
        do {
            try value.encode(to: ValueEncoder(box: box, codingPath: []))
        } catch let error as JSONError {
            throw error
        } catch let error as EncodingError {
            switch error {
            case .invalidValue(_, let context):
                throw JSONError(path: JSONError.pathString(context.codingPath), message: context.debugDescription)
            @unknown default:
                throw JSONError(message: "\(error)")
            }
        } catch {
            throw JSONError(message: "\(error)")
        }
        return box.value
    }
}

extension JSONError {
    /// Maps Swift's decoding errors to a message that names the field and what was expected.
    public init(decoding error: DecodingError) {
        switch error {
        case .typeMismatch(let type, let context):
            self.init(path: JSONError.pathString(context.codingPath), message: context.debugDescription.isEmpty
                ? "expected \(type)" : context.debugDescription)
        case .valueNotFound(let type, let context):
            self.init(path: JSONError.pathString(context.codingPath), message: "expected \(type), found null")
        case .keyNotFound(let key, let context):
            self.init(path: JSONError.pathString(context.codingPath + [key]), message: "required field is missing")
        case .dataCorrupted(let context):
            // Swift's own text for an unknown enum case repeats the value: name the field only.
            let message = context.debugDescription.hasPrefix("Cannot initialize ") ? "not one of the known values" : context.debugDescription
            self.init(path: JSONError.pathString(context.codingPath), message: message)
        @unknown default:
            self.init(message: "\(error)")
        }
    }
}

// MARK: - Decoding

/// A coding key for array positions and dynamic object keys.
struct JSONKey: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(stringValue: String) { self.stringValue = stringValue }
    init(intValue: Int) {
        self.stringValue = "Index \(intValue)"
        self.intValue = intValue
    }
}

struct ValueDecoder: Decoder {
    let value: JSONValue
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .object(let object) = value else {
            throw DecodingError.typeMismatch(
                JSONObject.self,
                .init(codingPath: codingPath, debugDescription: "expected an object, found \(value.typeName)"))
        }
        return KeyedDecodingContainer(KeyedValueDecoder<Key>(object: object, codingPath: codingPath))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard case .array(let array) = value else {
            throw DecodingError.typeMismatch(
                [JSONValue].self,
                .init(codingPath: codingPath, debugDescription: "expected an array, found \(value.typeName)"))
        }
        return UnkeyedValueDecoder(array: array, codingPath: codingPath)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        SingleValueDecoder(value: value, codingPath: codingPath)
    }
}

/// Scalar conversions shared by the three container kinds.
enum Scalar {
    static func mismatch(_ what: String, _ value: JSONValue, _ path: [any CodingKey]) -> DecodingError {
        .typeMismatch(Any.self, .init(codingPath: path, debugDescription: "expected \(what), found \(value.typeName)"))
    }

    static func decode<T: Decodable>(_ type: T.Type, _ value: JSONValue, _ path: [any CodingKey]) throws -> T {
        if T.self == JSONValue.self, let result = value as? T { return result }
        switch type {
        case is Bool.Type:
            guard let bool = value.boolValue else { throw mismatch("a boolean", value, path) }
            return bool as! T  // the type is checked by the case above
        case is String.Type:
            guard let string = value.stringValue else { throw mismatch("a string", value, path) }
            return string as! T
        case is Double.Type:
            guard let number = value.doubleValue else { throw mismatch("a number", value, path) }
            return number as! T
        case is Float.Type:
            guard let number = value.doubleValue else { throw mismatch("a number", value, path) }
            return Float(number) as! T
        case is Int.Type: return try integer(Int.self, value, path) as! T
        case is Int8.Type: return try integer(Int8.self, value, path) as! T
        case is Int16.Type: return try integer(Int16.self, value, path) as! T
        case is Int32.Type: return try integer(Int32.self, value, path) as! T
        case is Int64.Type: return try integer(Int64.self, value, path) as! T
        case is UInt.Type: return try integer(UInt.self, value, path) as! T
        case is UInt8.Type: return try integer(UInt8.self, value, path) as! T
        case is UInt16.Type: return try integer(UInt16.self, value, path) as! T
        case is UInt32.Type: return try integer(UInt32.self, value, path) as! T
        case is UInt64.Type: return try integer(UInt64.self, value, path) as! T
        default:
            return try T(from: ValueDecoder(value: value, codingPath: path))
        }
    }

    static func integer<I: FixedWidthInteger>(_ type: I.Type, _ value: JSONValue, _ path: [any CodingKey]) throws -> I {
        guard let wide = value.intValue else {
            if value.doubleValue != nil {
                throw DecodingError.dataCorrupted(.init(codingPath: path, debugDescription: "expected an integer, found \(value)"))
            }
            throw mismatch("an integer", value, path)
        }
        guard let exact = I(exactly: wide) else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: path, debugDescription: "\(wide) is out of range \(I.min)...\(I.max)"))
        }
        return exact
    }
}

struct KeyedValueDecoder<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let object: JSONObject
    let codingPath: [any CodingKey]
    var allKeys: [Key] { object.keys.compactMap { Key(stringValue: $0) } }

    func contains(_ key: Key) -> Bool { object[key.stringValue] != nil }

    private func value(_ key: Key) throws -> JSONValue {
        guard let value = object[key.stringValue] else {
            throw DecodingError.keyNotFound(key, .init(codingPath: codingPath, debugDescription: "required field is missing"))
        }
        return value
    }

    func decodeNil(forKey key: Key) throws -> Bool { object[key.stringValue]?.isNull ?? true }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        let value = try value(key)
        if value.isNull, !(T.self == JSONValue.self) {
            throw DecodingError.valueNotFound(type, .init(codingPath: codingPath + [key], debugDescription: "found null"))
        }
        return try Scalar.decode(type, value, codingPath + [key])
    }

    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        guard let value = object[key.stringValue], !value.isNull else { return nil }
        return try Scalar.decode(type, value, codingPath + [key])
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws
        -> KeyedDecodingContainer<NestedKey>
    {
        try ValueDecoder(value: value(key), codingPath: codingPath + [key]).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try ValueDecoder(value: value(key), codingPath: codingPath + [key]).unkeyedContainer()
    }

    func superDecoder() throws -> any Decoder { ValueDecoder(value: .object(object), codingPath: codingPath) }
    func superDecoder(forKey key: Key) throws -> any Decoder {
        ValueDecoder(value: object[key.stringValue] ?? .null, codingPath: codingPath + [key])
    }
}

struct UnkeyedValueDecoder: UnkeyedDecodingContainer {
    let array: [JSONValue]
    let codingPath: [any CodingKey]
    var currentIndex = 0
    var count: Int? { array.count }
    var isAtEnd: Bool { currentIndex >= array.count }

    init(array: [JSONValue], codingPath: [any CodingKey]) {
        self.array = array
        self.codingPath = codingPath
    }

    private mutating func next() throws -> (JSONValue, [any CodingKey]) {
        let path = codingPath + [JSONKey(intValue: currentIndex)]
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(Any.self, .init(codingPath: path, debugDescription: "array is too short"))
        }
        defer { currentIndex += 1 }
        return (array[currentIndex], path)
    }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd, array[currentIndex].isNull else { return false }
        currentIndex += 1
        return true
    }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let (value, path) = try next()
        return try Scalar.decode(type, value, path)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws
        -> KeyedDecodingContainer<NestedKey>
    {
        let (value, path) = try next()
        return try ValueDecoder(value: value, codingPath: path).container(keyedBy: type)
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        let (value, path) = try next()
        return try ValueDecoder(value: value, codingPath: path).unkeyedContainer()
    }

    mutating func superDecoder() throws -> any Decoder {
        let (value, path) = try next()
        return ValueDecoder(value: value, codingPath: path)
    }
}

struct SingleValueDecoder: SingleValueDecodingContainer {
    let value: JSONValue
    let codingPath: [any CodingKey]
    func decodeNil() -> Bool { value.isNull }
    func decode<T: Decodable>(_ type: T.Type) throws -> T { try Scalar.decode(type, value, codingPath) }
}

// MARK: - Encoding

/// Where an encoder writes its result; containers write through it so nesting composes.
class ValueBox {
    var value: JSONValue = .null
}

struct ValueEncoder: Encoder {
    let box: ValueBox
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        if case .object = box.value {} else { box.value = .object(JSONObject()) }
        return KeyedEncodingContainer(KeyedValueEncoder<Key>(box: box, codingPath: codingPath))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        if case .array = box.value {} else { box.value = .array([]) }
        return UnkeyedValueEncoder(box: box, codingPath: codingPath)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        SingleValueEncoder(box: box, codingPath: codingPath)
    }

    /// Encodes one value to a `JSONValue`, using the scalar fast paths.
    static func encode<T: Encodable>(_ value: T, codingPath: [any CodingKey]) throws -> JSONValue {
        switch value {
        case let v as JSONValue: return v
        case let v as Bool: return .bool(v)
        case let v as String: return .string(v)
        case let v as Double: return .double(v)
        case let v as Float: return .double(Double(v))
        case let v as Int: return .int(Int64(v))
        case let v as Int8: return .int(Int64(v))
        case let v as Int16: return .int(Int64(v))
        case let v as Int32: return .int(Int64(v))
        case let v as Int64: return .int(v)
        case let v as UInt8: return .int(Int64(v))
        case let v as UInt16: return .int(Int64(v))
        case let v as UInt32: return .int(Int64(v))
        case let v as UInt:
            guard let exact = Int64(exactly: v) else { throw tooLarge(v, codingPath) }
            return .int(exact)
        case let v as UInt64:
            guard let exact = Int64(exactly: v) else { throw tooLarge(v, codingPath) }
            return .int(exact)
        default:
            let box = ValueBox()
            try value.encode(to: ValueEncoder(box: box, codingPath: codingPath))
            return box.value
        }
    }

    static func tooLarge(_ value: some BinaryInteger, _ path: [any CodingKey]) -> EncodingError {
        .invalidValue(value, .init(codingPath: path, debugDescription: "\(value) does not fit a JSON 64-bit integer"))
    }
}

struct KeyedValueEncoder<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let box: ValueBox
    let codingPath: [any CodingKey]

    private func set(_ value: JSONValue, _ key: Key) {
        guard case .object(var object) = box.value else { return }
        box.value = .null  // drop the extra reference so the object is mutated in place
        object[key.stringValue] = value
        box.value = .object(object)
    }

    mutating func encodeNil(forKey key: Key) throws { set(.null, key) }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        set(try ValueEncoder.encode(value, codingPath: codingPath + [key]), key)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key)
        -> KeyedEncodingContainer<NestedKey>
    {
        let nested = ValueBox()
        nested.value = .object(JSONObject())
        let container = KeyedValueEncoder<NestedKey>(box: NestedBox(parent: box, key: key.stringValue, nested: nested), codingPath: codingPath + [key])
        return KeyedEncodingContainer(container)
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        let nested = ValueBox()
        nested.value = .array([])
        return UnkeyedValueEncoder(box: NestedBox(parent: box, key: key.stringValue, nested: nested), codingPath: codingPath + [key])
    }

    mutating func superEncoder() -> any Encoder { ValueEncoder(box: box, codingPath: codingPath) }
    mutating func superEncoder(forKey key: Key) -> any Encoder {
        ValueEncoder(box: NestedBox(parent: box, key: key.stringValue, nested: ValueBox()), codingPath: codingPath + [key])
    }
}

/// A box that copies its value into a parent object's key on every write, so nested containers
/// (rare in Hyperion's types) stay correct without a second pass.
final class NestedBox: ValueBox {
    let parent: ValueBox
    let key: String
    init(parent: ValueBox, key: String, nested: ValueBox) {
        self.parent = parent
        self.key = key
        super.init()
        self.value = nested.value
        write()
    }
    override var value: JSONValue {
        didSet { write() }
    }
    private func write() {
        guard case .object(var object) = parent.value else { return }
        object[key] = value
        parent.value = .object(object)
    }
}

struct UnkeyedValueEncoder: UnkeyedEncodingContainer {
    let box: ValueBox
    let codingPath: [any CodingKey]
    var count: Int {
        if case .array(let array) = box.value { return array.count }
        return 0
    }

    private func append(_ value: JSONValue) {
        guard case .array(var array) = box.value else { return }
        box.value = .null
        array.append(value)
        box.value = .array(array)
    }

    mutating func encodeNil() throws { append(.null) }

    mutating func encode<T: Encodable>(_ value: T) throws {
        append(try ValueEncoder.encode(value, codingPath: codingPath + [JSONKey(intValue: count)]))
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type)
        -> KeyedEncodingContainer<NestedKey>
    {
        let index = count
        append(.object(JSONObject()))
        let nested = IndexedBox(parent: box, index: index, initial: .object(JSONObject()))
        return KeyedEncodingContainer(KeyedValueEncoder<NestedKey>(box: nested, codingPath: codingPath + [JSONKey(intValue: index)]))
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let index = count
        append(.array([]))
        let nested = IndexedBox(parent: box, index: index, initial: .array([]))
        return UnkeyedValueEncoder(box: nested, codingPath: codingPath + [JSONKey(intValue: index)])
    }

    mutating func superEncoder() -> any Encoder {
        let index = count
        append(.null)
        return ValueEncoder(box: IndexedBox(parent: box, index: index, initial: .null), codingPath: codingPath + [JSONKey(intValue: index)])
    }
}

/// Like `NestedBox`, for an element of a parent array.
final class IndexedBox: ValueBox {
    let parent: ValueBox
    let index: Int
    init(parent: ValueBox, index: Int, initial: JSONValue) {
        self.parent = parent
        self.index = index
        super.init()
        self.value = initial
    }
    override var value: JSONValue {
        didSet {
            guard case .array(var array) = parent.value, array.indices.contains(index) else { return }
            array[index] = value
            parent.value = .array(array)
        }
    }
}

struct SingleValueEncoder: SingleValueEncodingContainer {
    let box: ValueBox
    let codingPath: [any CodingKey]
    mutating func encodeNil() throws { box.value = .null }
    mutating func encode<T: Encodable>(_ value: T) throws {
        box.value = try ValueEncoder.encode(value, codingPath: codingPath)
    }
}
