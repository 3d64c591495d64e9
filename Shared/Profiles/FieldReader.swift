import JSON

/// Reads the fields of one JSON object of a user's file while remembering where it is, so every
/// refusal names the exact field (`topology.tiers[1].nodes[0].flops: expected a number > 0`).
///
/// Extra keys are ignored on purpose: files may carry `_comment`, `_sources` or future fields.
struct FieldReader {
    let object: JSONObject
    let path: String

    init(_ value: JSONValue, path: String) throws(JSONError) {
        guard let object = value.objectValue else {
            throw JSONError(path: path, message: "expected an object, found \(value.typeName)")
        }
        self.object = object
        self.path = path
    }

    func fieldPath(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    func has(_ key: String) -> Bool {
        if let value = object[key], !value.isNull { return true }
        return false
    }

    /// A number that must be present, finite and satisfy `rule`.
    func number(_ key: String, _ rule: NumberRule) throws(JSONError) -> Double {
        guard let value = try optionalNumber(key, rule) else {
            throw JSONError(path: fieldPath(key), message: "required field is missing (\(rule.expectation))")
        }
        return value
    }

    /// A number that may be absent (or null); when present it must satisfy `rule`.
    func optionalNumber(_ key: String, _ rule: NumberRule) throws(JSONError) -> Double? {
        guard let value = object[key], !value.isNull else { return nil }
        guard let number = value.doubleValue, number.isFinite, rule.admits(number) else {
            throw JSONError(path: fieldPath(key), message: "expected \(rule.expectation)")
        }
        return number
    }

    /// A whole number that may be absent; when present it must be an integer satisfying `minimum`.
    func optionalInteger(_ key: String, minimum: Int) throws(JSONError) -> Int? {
        guard let value = object[key], !value.isNull else { return nil }
        guard let integer = value.intValue, integer >= Int64(minimum), integer <= Int64(Int32.max) else {
            throw JSONError(path: fieldPath(key), message: "expected an integer ≥ \(minimum)")
        }
        return Int(integer)
    }

    func optionalString(_ key: String) throws(JSONError) -> String? {
        guard let value = object[key], !value.isNull else { return nil }
        guard let text = value.stringValue else {
            throw JSONError(path: fieldPath(key), message: "expected a string, found \(value.typeName)")
        }
        return text
    }

    func string(_ key: String) throws(JSONError) -> String {
        guard let text = try optionalString(key) else {
            throw JSONError(path: fieldPath(key), message: "required field is missing (expected a string)")
        }
        return text
    }

    /// The elements of an array field, each with its own path (`tiers[2]`).
    func array(_ key: String, required: Bool) throws(JSONError) -> [(value: JSONValue, path: String)] {
        guard let value = object[key], !value.isNull else {
            if required {
                throw JSONError(path: fieldPath(key), message: "required field is missing (expected an array)")
            }
            return []
        }
        guard let elements = value.arrayValue else {
            throw JSONError(path: fieldPath(key), message: "expected an array, found \(value.typeName)")
        }
        return elements.enumerated().map { ($0.element, "\(fieldPath(key))[\($0.offset)]") }
    }

    func nested(_ key: String) throws(JSONError) -> FieldReader? {
        guard let value = object[key], !value.isNull else { return nil }
        return try FieldReader(value, path: fieldPath(key))
    }
}

/// What a numeric field of a file must satisfy.
enum NumberRule {
    case positive
    case nonNegative

    func admits(_ number: Double) -> Bool {
        switch self {
        case .positive: number > 0
        case .nonNegative: number >= 0
        }
    }

    var expectation: String {
        switch self {
        case .positive: "a number > 0"
        case .nonNegative: "a number ≥ 0"
        }
    }
}
