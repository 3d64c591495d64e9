/// GPT-2's reversible mapping between bytes and printable Unicode scalars.
///
/// Byte-level BPE vocabularies spell every token with these scalars instead of raw bytes, so that
/// whitespace and control bytes become visible characters (a space is `Ġ`, a newline `Ċ`). Bytes
/// that are already printable Latin-1 map to themselves; the other 68 take the scalars from U+0100 on,
/// in byte order.
enum ByteLevelAlphabet {
    /// The scalar that spells each byte, indexed by the byte.
    static let scalarForByte: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        var nextUnprintable: UInt32 = 256
        for byte in 0..<256 {
            if isPrintedAsItself(UInt8(byte)) {
                table[byte] = Unicode.Scalar(UInt8(byte))
            } else {
                // Every value from 256 to 323 is a valid scalar, so this never falls back.
                table[byte] = Unicode.Scalar(nextUnprintable) ?? " "
                nextUnprintable += 1
            }
        }
        return table
    }()

    /// The byte a vocabulary scalar stands for, or nil when the scalar is not in the alphabet.
    static func byte(for scalar: Unicode.Scalar) -> UInt8? {
        let value = scalar.value
        if value < 256 {
            return isPrintedAsItself(UInt8(value)) ? UInt8(value) : nil
        }
        let index = Int(value) - 256
        return index < unprintableBytes.count ? unprintableBytes[index] : nil
    }

    /// The bytes that are not printed as themselves, in the order they take scalars from U+0100.
    private static let unprintableBytes: [UInt8] = (0..<256).map { UInt8($0) }.filter { !isPrintedAsItself($0) }

    /// `!`…`~`, `¡`…`¬` and `®`…`ÿ` are printed as themselves.
    private static func isPrintedAsItself(_ byte: UInt8) -> Bool {
        (0x21...0x7E).contains(byte) || (0xA1...0xAC).contains(byte) || (0xAE...0xFF).contains(byte)
    }

    /// The vocabulary spelling of a byte string.
    static func spelling(of bytes: some Sequence<UInt8>) -> String {
        var text = String.UnicodeScalarView()
        for byte in bytes { text.append(scalarForByte[Int(byte)]) }
        return String(text)
    }
}
