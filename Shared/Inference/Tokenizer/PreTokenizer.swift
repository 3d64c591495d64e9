/// How text is cut into pieces before byte-pair merging, which never crosses a piece boundary.
///
/// Each case is the splitting regex a GGUF file names in `tokenizer.ggml.pre`, implemented by hand
/// over Unicode scalars so that results do not depend on a platform regex engine. `\p{L}` and `\p{N}`
/// are the Unicode general categories L* and N*; `\s` is the Unicode White_Space property.
public enum PreTokenizer: String, Sendable, CaseIterable {
    /// SmolLM: every `\p{N}` scalar is a piece of its own, then GPT-2's regex runs inside each
    /// remaining stretch (`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)`).
    case smollm
    /// Llama 3: `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
    /// ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`; a piece that is a whole vocabulary
    /// token is taken as is, without merging.
    case llamaBPE = "llama-bpe"
    /// GPT-2: `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`.
    case gpt2

    /// The pre-tokenizer a GGUF `tokenizer.ggml.pre` value names, accepting the aliases converters write.
    public init?(ggufName: String) {
        switch ggufName {
        case "smollm": self = .smollm
        case "llama-bpe", "llama3", "llama-v3": self = .llamaBPE
        case "gpt2", "gpt-2": self = .gpt2
        default: return nil
        }
    }

    /// Whether a piece that is itself a vocabulary token skips merging (Llama 3's `ignore_merges`).
    var takesWholeTokenPieces: Bool { self == .llamaBPE }

    /// The pieces of `text`, as ranges of its scalar indices that cover it in order.
    func pieces(of text: ClassifiedScalars) -> [Range<Int>] {
        var pieces: [Range<Int>] = []
        pieces.reserveCapacity(text.count / 3 + 1)
        switch self {
        case .gpt2:
            splitGPT2(text, 0..<text.count, into: &pieces)
        case .llamaBPE:
            splitLlama3(text, 0..<text.count, into: &pieces)
        case .smollm:
            var stretchStart = 0
            for index in 0..<text.count where text.isNumber(index) {
                splitGPT2(text, stretchStart..<index, into: &pieces)
                pieces.append(index..<(index + 1))
                stretchStart = index + 1
            }
            splitGPT2(text, stretchStart..<text.count, into: &pieces)
        }
        return pieces
    }

    /// GPT-2's regex inside `range`; lookahead sees nothing past the range's end.
    ///
    /// Without the trailing `|\s+` (as SmolLM's variant is written) a lone whitespace scalar before
    /// a non-whitespace one is left unmatched and becomes a piece by itself, exactly what `\s+`
    /// matches, so one implementation serves both.
    private func splitGPT2(_ text: ClassifiedScalars, _ range: Range<Int>, into pieces: inout [Range<Int>]) {
        let end = range.upperBound
        var start = range.lowerBound
        while start < end {
            let stop = matchGPT2(text, at: start, end: end)
            pieces.append(start..<stop)
            start = stop
        }
    }

    private func matchGPT2(_ text: ClassifiedScalars, at start: Int, end: Int) -> Int {
        if let stop = matchContraction(text, at: start, end: end, ignoringCase: false) { return stop }
        // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: an optional space joins the run after it.
        var runStart = start
        if text.value(start) == 0x20, start + 1 < end, !text.isWhitespace(start + 1) {
            runStart = start + 1
        }
        if text.isLetter(runStart) {
            return text.endOfRun(from: runStart, end: end, where: text.isLetter)
        }
        if text.isNumber(runStart) {
            return text.endOfRun(from: runStart, end: end, where: text.isNumber)
        }
        if !text.isWhitespace(runStart) {
            return text.endOfRun(from: runStart, end: end, where: text.isOther)
        }
        return matchTrailingWhitespace(text, at: start, end: end)
    }

    /// `\s+(?!\S)|\s+` at a whitespace scalar: the run, minus its last scalar when a non-space
    /// follows and the run is longer than one (that scalar then leads the next piece).
    private func matchTrailingWhitespace(_ text: ClassifiedScalars, at start: Int, end: Int) -> Int {
        let runEnd = text.endOfRun(from: start, end: end, where: text.isWhitespace)
        if runEnd == end || runEnd - start == 1 { return runEnd }
        return runEnd - 1
    }

    /// Llama 3's regex inside `range`.
    private func splitLlama3(_ text: ClassifiedScalars, _ range: Range<Int>, into pieces: inout [Range<Int>]) {
        let end = range.upperBound
        var start = range.lowerBound
        while start < end {
            let stop = matchLlama3(text, at: start, end: end)
            pieces.append(start..<stop)
            start = stop
        }
    }

    private func matchLlama3(_ text: ClassifiedScalars, at start: Int, end: Int) -> Int {
        if let stop = matchContraction(text, at: start, end: end, ignoringCase: true) { return stop }
        let value = text.value(start)
        let isLineBreak = value == 0x0A || value == 0x0D
        // `[^\r\n\p{L}\p{N}]?\p{L}+`
        if !isLineBreak, !text.isLetter(start), !text.isNumber(start), start + 1 < end, text.isLetter(start + 1) {
            return text.endOfRun(from: start + 1, end: end, where: text.isLetter)
        }
        if text.isLetter(start) {
            return text.endOfRun(from: start, end: end, where: text.isLetter)
        }
        // `\p{N}{1,3}`
        if text.isNumber(start) {
            var stop = start + 1
            while stop < end, stop - start < 3, text.isNumber(stop) { stop += 1 }
            return stop
        }
        // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
        var runStart = start
        if value == 0x20, start + 1 < end, text.isOther(start + 1) { runStart = start + 1 }
        if text.isOther(runStart) {
            let runEnd = text.endOfRun(from: runStart, end: end, where: text.isOther)
            return text.endOfRun(from: runEnd, end: end, where: text.isLineBreak)
        }
        // `\s*[\r\n]+`: the whitespace run up to and including its last line break.
        let runEnd = text.endOfRun(from: start, end: end, where: text.isWhitespace)
        var lastBreak = runEnd - 1
        while lastBreak >= start, !text.isLineBreak(lastBreak) { lastBreak -= 1 }
        if lastBreak >= start { return lastBreak + 1 }
        return matchTrailingWhitespace(text, at: start, end: end)
    }

    /// `'s|'t|'re|'ve|'m|'ll|'d`, optionally ignoring ASCII case.
    private func matchContraction(_ text: ClassifiedScalars, at start: Int, end: Int, ignoringCase: Bool) -> Int? {
        guard text.value(start) == 0x27, start + 1 < end else { return nil }
        func letter(_ index: Int) -> UInt32 {
            let value = text.value(index)
            return ignoringCase && (0x41...0x5A).contains(value) ? value + 0x20 : value
        }
        switch letter(start + 1) {
        case 0x73, 0x74, 0x6D, 0x64:  // s t m d
            return start + 2
        case 0x72, 0x76:  // r v, then e
            return start + 2 < end && letter(start + 2) == 0x65 ? start + 3 : nil
        case 0x6C:  // l, then l
            return start + 2 < end && letter(start + 2) == 0x6C ? start + 3 : nil
        default:
            return nil
        }
    }
}

/// Text as Unicode scalars with the character classes the splitting regexes test, looked up once.
struct ClassifiedScalars {
    private static let letter: UInt8 = 1
    private static let number: UInt8 = 2
    private static let whitespace: UInt8 = 4

    /// The scalar values.
    private(set) var values: [UInt32] = []
    /// Bit set of `letter`, `number`, `whitespace` per scalar.
    private var classes: [UInt8] = []
    /// Offset of each scalar's first byte in the text's UTF-8, plus the total length at the end.
    private(set) var utf8Offsets: [Int] = []

    init(_ text: Substring) {
        let scalars = text.unicodeScalars
        values.reserveCapacity(text.utf8.count)
        classes.reserveCapacity(text.utf8.count)
        utf8Offsets.reserveCapacity(text.utf8.count + 1)
        var offset = 0
        for scalar in scalars {
            values.append(scalar.value)
            classes.append(Self.classify(scalar))
            utf8Offsets.append(offset)
            offset += UTF8.width(scalar)
        }
        utf8Offsets.append(offset)
    }

    var count: Int { values.count }

    @inline(__always) func value(_ index: Int) -> UInt32 { values[index] }
    @inline(__always) func isLetter(_ index: Int) -> Bool { classes[index] & Self.letter != 0 }
    @inline(__always) func isNumber(_ index: Int) -> Bool { classes[index] & Self.number != 0 }
    @inline(__always) func isWhitespace(_ index: Int) -> Bool { classes[index] & Self.whitespace != 0 }
    /// `[^\s\p{L}\p{N}]`
    @inline(__always) func isOther(_ index: Int) -> Bool { classes[index] == 0 }
    /// `[\r\n]`
    @inline(__always) func isLineBreak(_ index: Int) -> Bool { values[index] == 0x0A || values[index] == 0x0D }

    /// The first index at or after `start` (and before `end`) where `belongs` fails.
    @inline(__always) func endOfRun(from start: Int, end: Int, where belongs: (Int) -> Bool) -> Int {
        var index = start
        while index < end, belongs(index) { index += 1 }
        return index
    }

    private static let asciiClasses: [UInt8] = (0..<128).map { value in
        classifyByProperties(Unicode.Scalar(UInt8(value)))
    }

    private static func classify(_ scalar: Unicode.Scalar) -> UInt8 {
        scalar.value < 128 ? asciiClasses[Int(scalar.value)] : classifyByProperties(scalar)
    }

    private static func classifyByProperties(_ scalar: Unicode.Scalar) -> UInt8 {
        let properties = scalar.properties
        if properties.isWhitespace { return whitespace }
        switch properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            return letter
        case .decimalNumber, .letterNumber, .otherNumber:
            return number
        default:
            return 0
        }
    }
}
