import Foundation
import PackagePlugin

/// Writes `BuildInfo.swift` — the version and the git commit of the tree — before every build of
/// the target that uses it, so `--version` names exactly what was built. Without git metadata (the
/// image's build context has no `.git`) the commit comes from `HYPERION_GIT_COMMIT`.
@main
struct BuildInfoPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let output = context.pluginWorkDirectoryURL.appending(path: "generated")
        let package = context.package.directoryURL
        return [
            .prebuildCommand(
                displayName: "Recording the version and git commit for \(target.name)",
                executable: URL(fileURLWithPath: "/bin/sh"),
                arguments: [
                    package.appending(path: "scripts/build-info").path, package.path,
                    output.appending(path: "BuildInfo.swift").path,
                    ProcessInfo.processInfo.environment["HYPERION_GIT_COMMIT"] ?? "",
                ],
                outputFilesDirectory: output)
        ]
    }
}
