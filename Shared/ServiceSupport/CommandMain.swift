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
                printError(prefixed(fullMessage(for: error)))
                exit(withError: ExitCode(2))
            }
            exit(withError: error)
        }
    }

    /// Every error line an executable prints starts with the command that refused, as in
    /// `hyperion generate: --max-tokens must be ≥ 1, got 0`, rather than the parser's `Error:`.
    static func prefixed(_ message: String) -> String {
        guard message.hasPrefix("Error: ") else { return message }
        return commandPath(CommandLine.arguments) + ": " + message.dropFirst("Error: ".count)
    }

    /// The command and subcommands named on a command line: `hyperion bench load`, `scheduler`.
    static func commandPath(_ arguments: [String]) -> String {
        var command: any ParsableCommand.Type = Self.self
        var path = [configuration.commandName ?? "hyperion"]
        for word in arguments.dropFirst() {
            guard let next = command.configuration.subcommands.first(where: { $0.configuration.commandName == word }) else { break }
            path.append(word)
            command = next
        }
        return path.joined(separator: " ")
    }
}
