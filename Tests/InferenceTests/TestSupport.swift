import Foundation
import Testing

@testable import Inference
import GGUF

/// Where the tests find the package root, the SmolLM2 model and the shared fixtures.
enum TestFiles {
    static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    struct MissingModel: Error, CustomStringConvertible {
        let path: String
        var description: String {
            "model file not found at \(path): run scripts/fetch-model (or set HYPERION_MODEL to a GGUF file)"
        }
    }

    /// The SmolLM2 GGUF: `HYPERION_MODEL`, else `models/SmolLM2-135M-Instruct.Q4_1.gguf`.
    /// A missing model is a failure with instructions, never a skip.
    static func modelPath() throws -> String {
        let path =
            ProcessInfo.processInfo.environment["HYPERION_MODEL"]
            ?? packageRoot.appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf").path
        guard FileManager.default.fileExists(atPath: path) else { throw MissingModel(path: path) }
        return path
    }

    /// One process-wide copy of the mapped model file (the mapping is read-only and shared).
    static let sharedModelFile: Result<GGUFFile, any Error> = Result { try GGUFFile(path: try modelPath()) }

    static func modelFile() throws -> GGUFFile { try sharedModelFile.get() }

    /// A reference file in the repository's `fixtures/` (or in `HYPERION_FIXTURES`).
    static func fixtureURL(_ name: String) -> URL {
        if let dir = ProcessInfo.processInfo.environment["HYPERION_FIXTURES"] {
            return URL(fileURLWithPath: dir).appendingPathComponent(name)
        }
        return packageRoot.appendingPathComponent("fixtures/\(name)")
    }

    /// A file committed under `Tests/InferenceTests/Fixtures/`.
    static func localFixtureURL(_ name: String) -> URL {
        packageRoot.appendingPathComponent("Tests/InferenceTests/Fixtures/\(name)")
    }
}

/// A minimal GGUF writer for building well-formed and deliberately broken files in tests.
struct GGUFBuilder {
    var bytes: [UInt8] = []

    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func string(_ s: String) {
        u64(UInt64(s.utf8.count))
        bytes.append(contentsOf: Array(s.utf8))
    }

    /// A header with the given counts.
    mutating func header(version: UInt32 = 3, tensors: Int, metadata: Int) {
        bytes.append(contentsOf: Array("GGUF".utf8))
        u32(version)
        u64(UInt64(tensors))
        u64(UInt64(metadata))
    }

    mutating func pad(to alignment: Int) {
        while bytes.count % alignment != 0 { bytes.append(0) }
    }
}

extension Array where Element == Float {
    /// Largest absolute element-wise difference.
    func maxAbsDifference(_ other: [Float]) -> Float {
        zip(self, other).reduce(0) { Swift.max($0, abs($1.0 - $1.1)) }
    }
}

/// A small deterministic generator so random tests are reproducible.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
