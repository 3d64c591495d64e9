import Foundation
import JSON

extension Scenario {
    /// Reads a scenario file. A topology or model given as a path is read relative to the
    /// scenario's own directory (so `"topology": "../paper-testbed.json"` works from anywhere);
    /// a model string that names a preset stays a preset.
    public static func load(_ path: String) throws(JSONError) -> Scenario {
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent()
        func resolve(_ reference: String) -> String {
            reference.hasPrefix("/") ? reference : directory.appendingPathComponent(reference).path
        }
        let name = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        return try parse(
            ProfileFiles.readJSON(path), name: name,
            topologyFile: { (file: String) throws(JSONError) -> Topology in try Topology.load(resolve(file)) },
            modelNamed: { (reference: String) throws(JSONError) -> ModelSource in
                do throws(ModelSpecError) {
                    if let shape = try ModelPreset.shape(named: reference) { return .shape(shape) }
                    return try ModelSource.load(resolve(reference))
                } catch {
                    throw JSONError(message: error.description)
                }
            })
    }
}
