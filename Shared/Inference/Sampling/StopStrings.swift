/// Stop-string matching for generated text, including what a streamer must hold back.
public struct StopStrings: Sendable, Equatable {
    public let strings: [String]

    public init(_ strings: [String]) { self.strings = strings.filter { !$0.isEmpty } }

    /// Where the earliest stop string starts in `text` (the text to return ends there), if any.
    public func firstMatch(in text: String) -> String.Index? {
        var earliest: String.Index?
        for stop in strings {
            if let range = text.range(of: stop), earliest.map({ range.lowerBound < $0 }) ?? true {
                earliest = range.lowerBound
            }
        }
        return earliest
    }

    /// Characters at the end of `text` that could be the start of a stop string; a streamer
    /// withholds them until the next token shows whether a stop string follows.
    public func pendingSuffixLength(of text: String) -> Int {
        var longest = 0
        for stop in strings {
            var prefix = Substring(stop.dropLast())
            while !prefix.isEmpty {
                if text.hasSuffix(prefix) {
                    longest = max(longest, prefix.count)
                    break
                }
                prefix = prefix.dropLast()
            }
        }
        return longest
    }
}

extension String {
    /// `range(of:)` without Foundation: the first occurrence of `needle`, by characters.
    fileprivate func range(of needle: String) -> Range<String.Index>? {
        guard !needle.isEmpty else { return nil }
        var start = startIndex
        while start < endIndex {
            if self[start...].hasPrefix(needle) {
                return start..<(index(start, offsetBy: needle.count))
            }
            start = index(after: start)
        }
        return nil
    }
}
