import Foundation

/// What a command printed and how it ended, for tests that run the built executables as users do.
public struct CommandRun: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

/// Runs `executable` with `arguments` (in `directory` when given) to its end, reading standard
/// error concurrently so a command that writes much to both streams cannot block on a full pipe.
public func runToEnd(
    _ executable: String, _ arguments: [String], in directory: URL? = nil, environment: [String: String] = [:]
) throws -> CommandRun {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if let directory { process.currentDirectoryURL = directory }
    if !environment.isEmpty {
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, given in given }
    }
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let errors = Locked(Data())
    let reading = DispatchGroup()
    let errorHandle = err.fileHandleForReading
    DispatchQueue.global().async(group: reading) {
        let data = errorHandle.readDataToEndOfFile()
        errors.withLock { $0 = data }
    }
    let stdout = out.fileHandleForReading.readDataToEndOfFile()
    reading.wait()
    process.waitUntilExit()
    return CommandRun(
        status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
        stderr: String(decoding: errors.withLock { $0 }, as: UTF8.self))
}
