import Foundation
import JSON

/// Reading the planner's input files (topology, workload, custom profile) from disk: the one place
/// that touches the file system, so the parsers stay pure and testable on strings.
public enum ProfileFiles {
    /// Parses the JSON file at `path`; a missing file or malformed JSON is a `JSONError` (with line
    /// and column for malformed text).
    public static func readJSON(_ path: String) throws(JSONError) -> JSONValue {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw JSONError(message: "cannot read \(path): \(error.localizedDescription)")
        }
        return try JSONValue.parse(text)
    }
}

extension Topology {
    /// Reads and validates a topology file.
    public static func load(_ path: String) throws(JSONError) -> Topology {
        try parse(ProfileFiles.readJSON(path))
    }
}

extension Workload {
    /// Reads a workload file; keys it does not name keep the values of `defaults`.
    public static func load(_ path: String, defaults: Workload = .default) throws(JSONError) -> Workload {
        try parse(ProfileFiles.readJSON(path), defaults: defaults)
    }
}
