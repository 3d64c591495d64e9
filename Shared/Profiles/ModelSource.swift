import Foundation
import GGUF

/// Where a model profile comes from, as a user names it (`--model`): a preset (`phi-3-medium`,
/// `phi-3-medium:q4_0`), a GGUF file, or a custom JSON profile (docs/design.md §6).
///
/// Presets and GGUF files give a shape whose decode FLOPs depend on the workload's context, so the
/// profile is made per workload; a custom profile is fixed.
public enum ModelSource: Sendable {
    case shape(TransformerShape)
    case fixed(ModelProfile)

    public var name: String {
        switch self {
        case .shape(let shape): shape.name
        case .fixed(let profile): profile.name
        }
    }

    public func profile(for workload: Workload) -> ModelProfile {
        switch self {
        case .shape(let shape): shape.profile(for: workload)
        case .fixed(let profile): profile
        }
    }

    /// Resolves a `--model` argument: a preset name first, then a `.gguf` or `.json` file.
    public static func load(_ argument: String) throws(ModelSpecError) -> ModelSource {
        if let shape = try ModelPreset.shape(named: argument) { return .shape(shape) }
        let lowered = argument.lowercased()
        guard FileManager.default.fileExists(atPath: argument) else {
            throw ModelSpecError(
                "'\(argument)' is neither a preset ("
                    + ModelPreset.allCases.map(\.rawValue).joined(separator: ", ")
                    + ", optionally with :f32, :f16, :q8_0, :q4_1 or :q4_0) nor an existing .gguf or .json file")
        }
        let fileName = URL(fileURLWithPath: argument).lastPathComponent
        if lowered.hasSuffix(".json") {
            do {
                var profile = try ModelProfile.parse(ProfileFiles.readJSON(argument))
                if profile.name == "custom" { profile.name = fileName }
                return .fixed(profile)
            } catch {
                throw ModelSpecError("\(argument): \(error.description)")
            }
        }
        let file: GGUFFile
        do {
            file = try GGUFFile(path: argument)
        } catch {
            throw ModelSpecError("\(argument): not a readable GGUF file or .json profile: \(error)")
        }
        var shape = try TransformerShape(gguf: file, name: fileName)
        shape.sha256 = SHA256.hex(file.bytes)
        return .shape(shape)
    }
}
