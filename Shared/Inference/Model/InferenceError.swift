/// Why a model could not be loaded or a step could not run.
///
/// `code` matches the wire `step_error` codes where one exists (`missing_cache`, `kv_full`), so a
/// stage worker can forward it unchanged; `message` says what to fix.
public struct InferenceError: Error, Sendable, Equatable, CustomStringConvertible {
    public let code: String
    public let message: String

    public init(code: String, message: String) {
        self.code = code
        self.message = message
    }

    /// The model file uses an architecture, tensor layout or type this module does not run.
    static func unsupportedModel(_ message: String) -> InferenceError {
        InferenceError(code: "unsupported_model", message: message)
    }

    /// A step's input is malformed (wrong size, token out of range, position out of the window…).
    static func badInput(_ message: String) -> InferenceError {
        InferenceError(code: "bad_input", message: message)
    }

    /// The step starts after positions this executor does not hold for its cache.
    static func missingCache(_ message: String) -> InferenceError {
        InferenceError(code: "missing_cache", message: message)
    }

    /// The step would exceed the executor's KV budget.
    static func kvFull(_ message: String) -> InferenceError {
        InferenceError(code: "kv_full", message: message)
    }

    public var description: String { "\(code): \(message)" }
}
