/// The generation-side state of one request: the tokens and text produced so far and whether it
/// must stop. Pure; the same rules serve the scheduler and single-process generation, so both
/// finish at the same token.
public struct Generation: Sendable {
    public enum Finish: String, Sendable {
        /// End-of-generation token or a stop string.
        case stop
        /// `max_tokens` reached.
        case length
    }

    public let maxTokens: Int
    public let stopStrings: [String]
    private let isEndOfGeneration: @Sendable (Int32) -> Bool
    private var stream: any TokenTextStream
    /// Generated tokens, excluding a final end-of-generation token.
    public private(set) var tokens: [Int32] = []
    /// Text of `tokens`, cut before a stop string once one appears.
    public private(set) var text = ""
    public private(set) var finish: Finish?

    public init(maxTokens: Int, stopStrings: [String], vocabulary: Vocabulary) {
        self.maxTokens = maxTokens
        self.stopStrings = stopStrings.filter { !$0.isEmpty }
        self.isEndOfGeneration = vocabulary.isEndOfGeneration
        self.stream = vocabulary.makeTextStream()
    }

    /// Takes the next sampled token. Returns the text to stream for it, or nil when the token is
    /// not part of the output (an end-of-generation token). Sets `finish` when generation is over.
    public mutating func accept(_ token: Int32) -> String? {
        guard finish == nil else { return nil }
        if isEndOfGeneration(token) {
            finish = .stop
            return nil
        }
        tokens.append(token)
        let piece = stream.append(token)
        let searchFrom = max(0, text.utf8.count - (stopStrings.map(\.utf8.count).max() ?? 0))
        text += piece
        if let cut = earliestStop(searchingFromUTF8Offset: searchFrom) {
            text = String(decoding: Array(text.utf8)[..<cut], as: UTF8.self)
            finish = .stop
        } else if tokens.count >= maxTokens {
            finish = .length
        }
        return piece
    }

    /// UTF-8 offset where the earliest stop string begins in `text`, looking only at the tail
    /// the last piece could have completed.
    private func earliestStop(searchingFromUTF8Offset start: Int) -> Int? {
        guard !stopStrings.isEmpty else { return nil }
        let bytes = Array(text.utf8)
        var best: Int?
        for stop in stopStrings {
            let needle = Array(stop.utf8)
            guard needle.count <= bytes.count else { continue }
            var i = start
            while i + needle.count <= bytes.count {
                if bytes[i] == needle[0], Array(bytes[i..<(i + needle.count)]) == needle {
                    best = min(best ?? i, i)
                    break
                }
                i += 1
            }
        }
        return best
    }
}
