import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Work for a connection's thread: a closure run there with the thread-confined core.
typealias Command = @Sendable (ConnectionCore) -> Void

/// The only way into a connection's thread: callers append commands, the thread drains them.
///
/// The thread sleeps in `poll` on its socket and on a pipe; an enqueue writes one byte to the pipe
/// only when the thread is asleep, so a busy thread takes thousands of commands without a syscall.
/// Publishes count their body bytes so a fast publisher waits (rather than queueing without bound)
/// when the thread falls behind.
final class CommandQueue: Sendable {
    private struct State {
        var commands: [Command] = []
        var sleeping = false
        var wakePending = false
        var closed = false
        var backlogBytes = 0
        var spaceWaiters: [CheckedContinuation<Void, Never>] = []
    }

    /// Publishers wait while this many body bytes are queued and not yet written.
    static let backlogLimitBytes = 16 * 1024 * 1024

    private let state = Mutex(State())
    let wakeReadFD: Int32
    private let wakeWriteFD: Int32

    init() throws(AMQPError) {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw .library(status: errno, message: "pipe() failed") }
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        wakeReadFD = fds[0]
        wakeWriteFD = fds[1]
    }

    deinit {
        closeDescriptor(wakeReadFD)
        closeDescriptor(wakeWriteFD)
    }

    /// Returns false (and drops the command) once the queue is closed.
    @discardableResult
    func enqueue(publishBytes: Int = 0, _ command: @escaping Command) -> Bool {
        let wake: Bool? = state.withLock { state in
            guard !state.closed else { return nil }
            state.commands.append(command)
            state.backlogBytes += publishBytes
            if state.sleeping && !state.wakePending {
                state.wakePending = true
                return true
            }
            return false
        }
        guard let wake else { return false }
        if wake { signal() }
        return true
    }

    /// Suspends while the publish backlog is over its limit.
    func waitForPublishSpace() async {
        guard state.withLock({ $0.backlogBytes > CommandQueue.backlogLimitBytes && !$0.closed }) else { return }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ready = state.withLock { state in
                if state.backlogBytes > CommandQueue.backlogLimitBytes && !state.closed {
                    state.spaceWaiters.append(continuation)
                    return false
                }
                return true
            }
            if ready { continuation.resume() }
        }
    }

    /// Called by the thread once a publish's bytes are written (or dropped).
    func publishDone(bytes: Int) {
        let waiters: [CheckedContinuation<Void, Never>] = state.withLock { state in
            state.backlogBytes -= bytes
            guard state.backlogBytes <= CommandQueue.backlogLimitBytes / 2, !state.spaceWaiters.isEmpty else { return [] }
            defer { state.spaceWaiters.removeAll() }
            return state.spaceWaiters
        }
        for waiter in waiters { waiter.resume() }
    }

    func drain() -> [Command] {
        state.withLock { state in
            defer { state.commands.removeAll(keepingCapacity: true) }
            return state.commands
        }
    }

    /// Whether commands are waiting (for the thread's short spin before it sleeps).
    var hasCommands: Bool { state.withLock { !$0.commands.isEmpty || $0.closed } }

    /// Marks the thread asleep unless work is already waiting; returns whether it may sleep.
    func prepareToSleep() -> Bool {
        state.withLock { state in
            guard state.commands.isEmpty && !state.closed else { return false }
            state.sleeping = true
            return true
        }
    }

    func wokeUp() {
        var byte: UInt8 = 0
        while read(wakeReadFD, &byte, 1) > 0 {}
        state.withLock { state in
            state.sleeping = false
            state.wakePending = false
        }
    }

    var isClosed: Bool { state.withLock { $0.closed } }

    /// Stops accepting commands and wakes the thread so it can shut down. Returns whether this call
    /// closed it.
    @discardableResult
    func close() -> Bool {
        let (first, waiters): (Bool, [CheckedContinuation<Void, Never>]) = state.withLock { state in
            let first = !state.closed
            state.closed = true
            defer { state.spaceWaiters.removeAll() }
            return (first, state.spaceWaiters)
        }
        for waiter in waiters { waiter.resume() }
        signal()
        return first
    }

    private func closeDescriptor(_ fd: Int32) {
        #if canImport(Glibc)
            _ = Glibc.close(fd)
        #elseif canImport(Darwin)
            _ = Darwin.close(fd)
        #endif
    }

    private func signal() {
        var byte: UInt8 = 1
        _ = write(wakeWriteFD, &byte, 1)
    }
}
