/// Why a JSON text or value was refused, with where: a line and column for malformed text, a
/// field path (`tiers[1].nodes[0].memory_bytes`) for a well-formed document with a bad field.
public struct JSONError: Error, Sendable, Equatable, CustomStringConvertible {
    /// 1-based line of the error in the text, when it came from parsing.
    public var line: Int?
    /// 1-based column of the error in the text, when it came from parsing.
    public var column: Int?
    /// Path of the offending field from the document's root; empty for the root itself.
    public var path: String
    /// What is wrong, in words a user can act on.
    public var message: String

    public init(line: Int? = nil, column: Int? = nil, path: String = "", message: String) {
        self.line = line
        self.column = column
        self.path = path
        self.message = message
    }

    public var description: String {
        var text = ""
        if let line, let column { text += "line \(line), column \(column): " }
        if !path.isEmpty { text += "\(path): " }
        return text + message
    }

    /// Renders a Codable coding path the way users write it: `tiers[1].nodes[0].flops`.
    public static func pathString(_ codingPath: [any CodingKey]) -> String {
        var text = ""
        for key in codingPath {
            if let index = key.intValue, key.stringValue.hasPrefix("Index ") || key.stringValue == "\(index)" {
                text += "[\(index)]"
            } else {
                text += text.isEmpty ? key.stringValue : ".\(key.stringValue)"
            }
        }
        return text
    }
}
