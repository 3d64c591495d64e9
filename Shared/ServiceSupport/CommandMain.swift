import ArgumentParser

extension AsyncParsableCommand {
    /// Parses and runs the command. A command line the parser refuses exits 2 (bad input), like
    /// every other bad input of Hyperion's executables, rather than the parser's own 64.
    public static func mainExitingTwoOnBadInput() async {
        do {
            var command = try parseAsRoot()
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
