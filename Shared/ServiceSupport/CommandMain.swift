import ArgumentParser
import Foundation

extension AsyncParsableCommand {
    /// Parses and runs the command. A command line the parser refuses exits 2 (bad input), like
    /// every other bad input of Hyperion's executables, rather than the parser's own 64.
    ///
    /// With `HYPERION_PARSE_ONLY` set (non-empty), a command line that parses and validates exits 0
    /// without running: how `scripts/check-docs` proves the README's commands are accepted.
    public static func mainExitingTwoOnBadInput() async {
        do {
            var command = try parseAsRoot()
            if let parseOnly = ProcessInfo.processInfo.environment["HYPERION_PARSE_ONLY"], !parseOnly.isEmpty {
                exit(withError: nil)
            }
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            if exitCode(for: error) == .validationFailure {
                printError(fullMessage(for: error))
                exit(withError: ExitCode(2))
            }
            exit(withError: error)
        }
    }
}
