/// Turns generated tokens into text one token at a time without ever splitting a UTF-8 character.
///
/// A token may end in the middle of a multi-byte character (emoji and CJK often span two tokens);
/// `append` holds such bytes back and returns `""` until the character is complete. The pieces it
/// returns, followed by `finish()`, concatenate to exactly `tokenizer.decode(ids)`.
public struct StreamingDetokenizer: Sendable {
    private let tokenizer: Tokenizer
    /// Bytes of a character that may still be completed by the next token.
    private var pending: [UInt8] = []

    public init(tokenizer: Tokenizer) {
        self.tokenizer = tokenizer
    }

    /// The text that `id` completes: everything up to the last character that is whole.
    public mutating func append(_ id: Int32) -> String {
        pending.append(contentsOf: tokenizer.bytes(of: id))
        let held = Self.incompleteSuffixLength(pending)
        guard held < pending.count else { return "" }
        let text = String(decoding: pending[..<(pending.count - held)], as: UTF8.self)
        pending.removeFirst(pending.count - held)
        return text
    }

    /// Whatever is held back, with an unfinished character shown as U+FFFD; the stream is then empty.
    public mutating func finish() -> String {
        defer { pending.removeAll() }
        return String(decoding: pending, as: UTF8.self)
    }

    /// Length of the trailing bytes that begin a valid UTF-8 sequence but do not complete it yet.
    ///
    /// Bytes that can no longer become valid are not held back: the decoder replaces them now,
    /// exactly as it would when decoding the whole sequence at once.
    static func incompleteSuffixLength(_ bytes: [UInt8]) -> Int {
        var length = 1
        while length <= min(3, bytes.count) {
            let byte = bytes[bytes.count - length]
            if byte & 0xC0 == 0x80 {
                length += 1
                continue
            }
            let sequenceLength: Int
            let secondByteRange: ClosedRange<UInt8>
            switch byte {
            case 0xC2...0xDF: (sequenceLength, secondByteRange) = (2, 0x80...0xBF)
            case 0xE0: (sequenceLength, secondByteRange) = (3, 0xA0...0xBF)
            case 0xED: (sequenceLength, secondByteRange) = (3, 0x80...0x9F)
            case 0xE1...0xEF: (sequenceLength, secondByteRange) = (3, 0x80...0xBF)
            case 0xF0: (sequenceLength, secondByteRange) = (4, 0x90...0xBF)
            case 0xF1...0xF3: (sequenceLength, secondByteRange) = (4, 0x80...0xBF)
            case 0xF4: (sequenceLength, secondByteRange) = (4, 0x80...0x8F)
            default: return 0
            }
            guard length < sequenceLength else { return 0 }
            if length >= 2, !secondByteRange.contains(bytes[bytes.count - length + 1]) { return 0 }
            return length
        }
        return 0
    }
}
