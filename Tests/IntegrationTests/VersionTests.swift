import Foundation
import IntegrationSupport
import Testing

/// `--version` on every executable names the version in `VERSION` and the git commit the binary
/// was built from, as a user reporting a problem would quote it.
@Suite("--version: the version and the commit each executable was built from")
struct VersionTests {
    @Test("every executable prints NAME VERSION, commit HEAD", arguments: ["hyperion", "partition-planner", "scheduler", "stage-worker", "link-emulator"])
    func printsVersionAndCommit(executable: String) throws {
        let root = TestPaths.packageRoot
        let version = try String(contentsOf: root.appendingPathComponent("VERSION"), encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let head = try runToEnd("/usr/bin/git", ["rev-parse", "--short=12", "HEAD"], in: root).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        try #require(head.count == 12, "git rev-parse gave '\(head)'")
        let run = try runToEnd(try ServiceProcess.binaryPath(executable), ["--version"])
        #expect(run.status == 0, "\(executable) --version exited \(run.status): \(run.stderr)")
        let line = run.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        // A tree with uncommitted changes to tracked files says so after the commit.
        #expect(line == "\(executable) \(version), commit \(head)" || line == "\(executable) \(version), commit \(head)+changes", "printed '\(line)'")
    }
}
