#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A GGUF (version 2 or 3) model file, memory-mapped and parsed: metadata, tensor table, data.
///
/// Tensor data is never copied: `tensorData(_:)` points into the mapping, which lives as long as
/// this object, so kernels read quantized weights straight from the page cache. Parsing checks every
/// length and offset against the file size, so a corrupt or truncated file fails with a
/// `GGUFError` naming the field instead of crashing.
///
/// ```swift
/// let file = try GGUFFile(path: "models/SmolLM2-135M-Instruct.Q4_1.gguf")
/// let arch = try file.requireString("general.architecture")      // "llama"
/// let tokens = file.stringArray("tokenizer.ggml.tokens")          // [String]?
/// let blocks = file.int("\(arch).block_count")                     // Int?
/// let q = file.tensor(named: "blk.0.attn_q.weight")                // GGUFTensorInfo?
/// ```
public final class GGUFFile: @unchecked Sendable {
    // Sendable: every stored property is immutable after init, and the mapped bytes are read-only.

    public let version: Int
    /// Every metadata pair, by key.
    public let metadata: [String: GGUFValue]
    /// Metadata keys in file order.
    public let metadataKeys: [String]
    /// The tensor table in file order.
    public let tensors: [GGUFTensorInfo]
    /// Alignment of the data section and of every tensor (`general.alignment`, default 32).
    public let alignment: Int
    /// Offset of the data section from the start of the file.
    public let dataOffset: Int
    /// Size of the whole file in bytes.
    public let fileBytes: Int

    private let storage: Storage
    private let tensorIndex: [String: Int]

    /// Maps and parses the file at `path`.
    public convenience init(path: String) throws {
        try self.init(storage: Storage(mappingFileAt: path))
    }

    /// Parses a GGUF image held in memory (copied); for tests and generated files.
    public convenience init(bytes: [UInt8]) throws {
        try self.init(storage: Storage(copying: bytes))
    }

    private init(storage: Storage) throws {
        self.storage = storage
        let buffer = storage.buffer
        fileBytes = buffer.count
        var reader = ByteReader(buffer: buffer)

        guard buffer.count >= 4 else {
            throw GGUFError(context: "header", reason: "not a GGUF file (\(buffer.count) bytes, shorter than the 4-byte magic \"GGUF\")")
        }
        let magic = try reader.bytes(4, what: "magic")
        guard Array(magic) == Array("GGUF".utf8) else {
            throw GGUFError(
                context: "header", reason: "not a GGUF file (magic bytes \(Array(magic)) are not \"GGUF\")")
        }
        let version = Int(try reader.u32(what: "version"))
        guard version == 2 || version == 3 else {
            throw GGUFError(context: "header", reason: "unsupported GGUF version \(version) (expected 2 or 3)")
        }
        self.version = version
        let tensorCount = try reader.count(what: "tensor count", limit: buffer.count)
        let metadataCount = try reader.count(what: "metadata count", limit: buffer.count)

        var metadata: [String: GGUFValue] = [:]
        var keys: [String] = []
        keys.reserveCapacity(metadataCount)
        for index in 0..<metadataCount {
            let key = try reader.string(what: "metadata[\(index)] key")
            let context = "metadata[\"\(key)\"]"
            let rawType = try reader.u32(what: "\(context) type")
            let value = try reader.value(rawType: rawType, what: context, depth: 0)
            guard metadata.updateValue(value, forKey: key) == nil else {
                throw GGUFError(context: context, reason: "key appears twice")
            }
            keys.append(key)
        }
        self.metadata = metadata
        metadataKeys = keys

        var alignment = 32
        if let value = metadata["general.alignment"] {
            guard let a = value.intValue, a > 0, a & (a - 1) == 0 else {
                throw GGUFError(
                    context: "metadata[\"general.alignment\"]",
                    reason: "expected a positive power of two, found \(value)")
            }
            alignment = a
        }
        self.alignment = alignment

        struct RawTensor {
            let name: String
            let shape: [Int]
            let type: GGMLType
            let offset: Int
        }
        var raw: [RawTensor] = []
        raw.reserveCapacity(tensorCount)
        var index: [String: Int] = [:]
        for i in 0..<tensorCount {
            let name = try reader.string(what: "tensor[\(i)] name")
            let context = "tensor \"\(name)\""
            let dimensionCount = Int(try reader.u32(what: "\(context) dimension count"))
            guard (1...8).contains(dimensionCount) else {
                throw GGUFError(context: context, reason: "dimension count \(dimensionCount) outside 1...8")
            }
            var shape: [Int] = []
            for d in 0..<dimensionCount {
                let n = try reader.u64(what: "\(context) shape[\(d)]")
                guard n > 0, n < UInt64(Int32.max) else {
                    throw GGUFError(context: context, reason: "shape[\(d)] = \(n) is not a usable size")
                }
                shape.append(Int(n))
            }
            let rawType = try reader.u32(what: "\(context) type")
            guard let type = GGMLType(rawValue: rawType) else {
                throw GGUFError(context: context, reason: "unknown tensor type \(rawType)")
            }
            let offset = try reader.u64(what: "\(context) offset")
            guard offset < UInt64(buffer.count) else {
                throw GGUFError(context: context, reason: "offset \(offset) beyond the file's \(buffer.count) bytes")
            }
            guard index.updateValue(raw.count, forKey: name) == nil else {
                throw GGUFError(context: context, reason: "tensor name appears twice")
            }
            raw.append(RawTensor(name: name, shape: shape, type: type, offset: Int(offset)))
        }
        tensorIndex = index

        let dataOffset = (reader.position + alignment - 1) / alignment * alignment
        self.dataOffset = dataOffset
        var tensors: [GGUFTensorInfo] = []
        tensors.reserveCapacity(raw.count)
        for t in raw {
            let context = "tensor \"\(t.name)\""
            let elements = t.shape.reduce(1) { $0.multipliedReportingOverflow(by: $1).overflow ? Int.max : $0 * $1 }
            guard t.shape[0] % t.type.blockElements == 0, let bytes = t.type.byteCount(elements: elements) else {
                throw GGUFError(
                    context: context,
                    reason: "row length \(t.shape[0]) is not a multiple of the \(t.type) block size \(t.type.blockElements)")
            }
            guard t.offset % alignment == 0 else {
                throw GGUFError(context: context, reason: "offset \(t.offset) is not a multiple of the alignment \(alignment)")
            }
            let end = dataOffset + t.offset + bytes
            guard end <= buffer.count else {
                throw GGUFError(
                    context: context,
                    reason: "truncated: data ends at byte \(end) but the file has \(buffer.count) bytes")
            }
            tensors.append(GGUFTensorInfo(name: t.name, shape: t.shape, type: t.type, offset: t.offset, byteCount: bytes))
        }
        self.tensors = tensors
    }

    // MARK: Metadata getters

    /// The architecture named by `general.architecture` (`llama`, `phi3`…), if present.
    public var architecture: String? { string("general.architecture") }

    public func string(_ key: String) -> String? { metadata[key]?.stringValue }
    public func int(_ key: String) -> Int? { metadata[key]?.intValue }
    public func double(_ key: String) -> Double? { metadata[key]?.doubleValue }
    public func float(_ key: String) -> Float? { metadata[key]?.doubleValue.map(Float.init) }
    public func bool(_ key: String) -> Bool? { metadata[key]?.boolValue }
    public func array(_ key: String) -> [GGUFValue]? { metadata[key]?.arrayValue }
    public func stringArray(_ key: String) -> [String]? { metadata[key]?.stringArray }
    public func intArray(_ key: String) -> [Int]? { metadata[key]?.intArray }
    public func floatArray(_ key: String) -> [Float]? { metadata[key]?.floatArray }

    /// The string at `key`, or an error naming the key when it is missing or not a string.
    public func requireString(_ key: String) throws -> String {
        try require(key, "string") { $0.stringValue }
    }

    /// The integer at `key`, or an error naming the key when it is missing or not an integer.
    public func requireInt(_ key: String) throws -> Int {
        try require(key, "integer") { $0.intValue }
    }

    /// The number at `key`, or an error naming the key when it is missing or not a number.
    public func requireDouble(_ key: String) throws -> Double {
        try require(key, "number") { $0.doubleValue }
    }

    private func require<T>(_ key: String, _ expected: String, _ get: (GGUFValue) -> T?) throws -> T {
        guard let value = metadata[key] else {
            throw GGUFError(context: "metadata[\"\(key)\"]", reason: "missing")
        }
        guard let result = get(value) else {
            throw GGUFError(context: "metadata[\"\(key)\"]", reason: "expected \(expected), found \(value.typeName)")
        }
        return result
    }

    // MARK: Tensors

    public func tensor(named name: String) -> GGUFTensorInfo? {
        tensorIndex[name].map { tensors[$0] }
    }

    /// The tensor's bytes inside the mapping; valid while this `GGUFFile` is alive.
    public func tensorData(_ tensor: GGUFTensorInfo) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: storage.buffer[(dataOffset + tensor.offset)..<(dataOffset + tensor.offset + tensor.byteCount)])
    }

    /// The whole file's bytes (for hashing or inspection); valid while this `GGUFFile` is alive.
    public var bytes: UnsafeRawBufferPointer { storage.buffer }
}

/// Owner of the file's bytes: a read-only mapping, or a heap copy.
private final class Storage {
    let buffer: UnsafeRawBufferPointer
    private let unmap: Bool

    init(mappingFileAt path: String) throws {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            throw GGUFError(context: path, reason: "cannot open: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw GGUFError(context: path, reason: "cannot stat: \(String(cString: strerror(errno)))")
        }
        let size = Int(info.st_size)
        guard size > 0 else {
            throw GGUFError(context: path, reason: "file is empty")
        }
        guard let base = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), base != MAP_FAILED else {
            throw GGUFError(context: path, reason: "cannot map: \(String(cString: strerror(errno)))")
        }
        buffer = UnsafeRawBufferPointer(start: base, count: size)
        unmap = true
    }

    init(copying bytes: [UInt8]) {
        let memory = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 64)
        memory.copyBytes(from: bytes)
        buffer = UnsafeRawBufferPointer(start: memory.baseAddress, count: bytes.count)
        unmap = false
    }

    deinit {
        guard let base = buffer.baseAddress else { return }
        if unmap {
            munmap(UnsafeMutableRawPointer(mutating: base), buffer.count)
        } else {
            base.deallocate()
        }
    }
}

/// A bounds-checked little-endian cursor over the file's header.
private struct ByteReader {
    let buffer: UnsafeRawBufferPointer
    var position = 0

    init(buffer: UnsafeRawBufferPointer) { self.buffer = buffer }

    private mutating func need(_ n: Int, what: String) throws {
        guard n >= 0, position <= buffer.count - n else {
            throw GGUFError(
                context: what,
                reason: "truncated: needs \(n) bytes at offset \(position), file has \(buffer.count)")
        }
    }

    mutating func bytes(_ n: Int, what: String) throws -> UnsafeRawBufferPointer {
        try need(n, what: what)
        defer { position += n }
        return UnsafeRawBufferPointer(rebasing: buffer[position..<(position + n)])
    }

    mutating func load<T: FixedWidthInteger>(_: T.Type, what: String) throws -> T {
        try need(MemoryLayout<T>.size, what: what)
        defer { position += MemoryLayout<T>.size }
        return T(littleEndian: buffer.loadUnaligned(fromByteOffset: position, as: T.self))
    }

    mutating func u32(what: String) throws -> UInt32 { try load(UInt32.self, what: what) }
    mutating func u64(what: String) throws -> UInt64 { try load(UInt64.self, what: what) }

    /// A u64 count that must be plausible for a file of `limit` bytes (each item takes ≥ 1 byte).
    mutating func count(what: String, limit: Int) throws -> Int {
        let n = try u64(what: what)
        guard n <= UInt64(limit) else {
            throw GGUFError(context: what, reason: "\(n) is more than the file's \(limit) bytes could hold")
        }
        return Int(n)
    }

    mutating func string(what: String) throws -> String {
        let length = try count(what: "\(what) length", limit: buffer.count)
        let raw = try bytes(length, what: what)
        guard let text = String(validating: raw, as: UTF8.self) else {
            throw GGUFError(context: what, reason: "string is not valid UTF-8")
        }
        return text
    }

    mutating func value(rawType: UInt32, what: String, depth: Int) throws -> GGUFValue {
        switch rawType {
        case 0: return .uint8(try load(UInt8.self, what: what))
        case 1: return .int8(try load(Int8.self, what: what))
        case 2: return .uint16(try load(UInt16.self, what: what))
        case 3: return .int16(try load(Int16.self, what: what))
        case 4: return .uint32(try load(UInt32.self, what: what))
        case 5: return .int32(try load(Int32.self, what: what))
        case 6: return .float32(Float(bitPattern: try load(UInt32.self, what: what)))
        case 7:
            let b = try load(UInt8.self, what: what)
            guard b <= 1 else { throw GGUFError(context: what, reason: "bool byte \(b) is neither 0 nor 1") }
            return .bool(b == 1)
        case 8: return .string(try string(what: what))
        case 9:
            guard depth < 4 else { throw GGUFError(context: what, reason: "arrays nested deeper than 4 levels") }
            let elementType = try u32(what: "\(what) element type")
            let n = try count(what: "\(what) element count", limit: buffer.count - position)
            var items: [GGUFValue] = []
            items.reserveCapacity(n)
            for i in 0..<n {
                items.append(try value(rawType: elementType, what: "\(what)[\(i)]", depth: depth + 1))
            }
            return .array(items)
        case 10: return .uint64(try load(UInt64.self, what: what))
        case 11: return .int64(try load(Int64.self, what: what))
        case 12: return .float64(Double(bitPattern: try load(UInt64.self, what: what)))
        default: throw GGUFError(context: what, reason: "unknown value type \(rawType)")
        }
    }
}
