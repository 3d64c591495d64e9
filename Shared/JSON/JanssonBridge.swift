import CJansson

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

extension JSONValue {
    /// Parses a JSON text. Duplicate keys, invalid UTF-8 and integers beyond 64 bits are errors
    /// with the line and column where they were found.
    public static func parse(_ text: String) throws(JSONError) -> JSONValue {
        try parse(bytes: Array(text.utf8))
    }

    /// Parses a JSON text given as UTF-8 bytes (a message body, a file).
    public static func parse(bytes: [UInt8]) throws(JSONError) -> JSONValue {
        var error = json_error_t()
        let flags = JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL
        let root: UnsafeMutablePointer<json_t>? = bytes.withUnsafeBufferPointer { buffer in
            buffer.baseAddress.map { base in
                base.withMemoryRebound(to: CChar.self, capacity: buffer.count) {
                    json_loadb($0, buffer.count, Int(flags), &error)
                }
            } ?? json_loadb("", 0, Int(flags), &error)
        }
        guard let root else {
            let text = withUnsafeBytes(of: error.text) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            // jansson quotes the text around the error ("near '...'"): a message body must not
            // reach logs through an error, and the line and column already say where.
            let reason = text.firstRange(of: " near '").map { String(text[..<$0.lowerBound]) } ?? text
            throw JSONError(line: Int(error.line), column: Int(error.column), message: reason)
        }
        defer { hyperion_json_decref(root) }
        return JSONValue(jansson: root)
    }

    /// Converts a borrowed jansson value; the caller keeps its reference.
    private init(jansson node: UnsafeMutablePointer<json_t>) {
        switch json_typeof_shim(node) {
        case JSON_OBJECT:
            var object = JSONObject()
            var iterator = json_object_iter(node)
            while let current = iterator {
                let key = String(cString: json_object_iter_key(current))
                if let child = json_object_iter_value(current) {
                    object[key] = JSONValue(jansson: child)
                }
                iterator = json_object_iter_next(node, current)
            }
            self = .object(object)
        case JSON_ARRAY:
            let count = json_array_size(node)
            var array: [JSONValue] = []
            array.reserveCapacity(count)
            for index in 0..<count {
                if let child = json_array_get(node, index) { array.append(JSONValue(jansson: child)) }
            }
            self = .array(array)
        case JSON_STRING:
            let length = json_string_length(node)
            let bytes = UnsafeRawBufferPointer(start: json_string_value(node), count: length)
            self = .string(String(decoding: bytes, as: UTF8.self))
        case JSON_INTEGER:
            self = .int(Int64(json_integer_value(node)))
        case JSON_REAL:
            self = .double(json_real_value(node))
        case JSON_TRUE:
            self = .bool(true)
        case JSON_FALSE:
            self = .bool(false)
        default:
            self = .null
        }
    }

    /// The JSON text of this value. Reals print with 17 significant digits so that they read back
    /// exactly; non-finite reals, which JSON cannot carry, print as `null`.
    public func serialized(pretty: Bool = false) -> String {
        guard let root = makeJansson() else { return "null" }
        defer { hyperion_json_decref(root) }
        var flags = Int(JSON_ENCODE_ANY) | hyperion_json_real_precision(17)
        flags |= pretty ? hyperion_json_indent(2) : Int(JSON_COMPACT)
        guard let text = json_dumps(root, flags) else { return "null" }
        defer { free(text) }
        return String(cString: text)
    }

    /// Builds a new jansson value (a new reference the caller owns).
    private func makeJansson() -> UnsafeMutablePointer<json_t>? {
        switch self {
        case .null:
            return json_null()
        case .bool(let value):
            return value ? json_true() : json_false()
        case .int(let value):
            return json_integer(json_int_t(value))
        case .double(let value):
            return value.isFinite ? json_real(value) : json_null()
        case .string(let value):
            // Interior NULs are kept: the length, not the terminator, bounds the string.
            return value.withCString { json_stringn_nocheck($0, value.utf8.count) }
        case .array(let values):
            let array = json_array()
            for value in values {
                if let child = value.makeJansson() { json_array_append_new(array, child) }
            }
            return array
        case .object(let object):
            let node = json_object()
            for (key, value) in object {
                if let child = value.makeJansson() {
                    _ = key.withCString { json_object_setn_new_nocheck(node, $0, key.utf8.count, child) }
                }
            }
            return node
        }
    }
}

extension JSONValue: CustomStringConvertible {
    public var description: String { serialized() }
}
