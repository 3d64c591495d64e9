#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Runs tasks on a connection's own thread, between its turns of reading and writing frames.
///
/// A consumer loop started with `withTaskExecutorPreference(connection.executor) { … }` gets each
/// delivery with no thread hop at all: the thread that read the frames resumes the loop. Use it only
/// for light handlers that forward work (publish, hand over to another task): while the loop runs,
/// that connection reads nothing, serves no heartbeat and settles nothing.
public final class AMQPConnectionExecutor: TaskExecutor {
    let commands: CommandQueue

    init(commands: CommandQueue) { self.commands = commands }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        let queued = commands.enqueue { _ in
            ConnectionThread.isRunningJob = true
            job.runSynchronously(on: executor)
            ConnectionThread.isRunningJob = false
        }
        // The connection is gone: the task must still finish somewhere.
        if !queued { globalConcurrentExecutor.enqueue(ExecutorJob(job)) }
    }
}

/// Marks the threads where a connection's executor is running a task, so that code which would
/// wait for that same thread (a consumer polling for its next delivery) suspends at once instead.
enum ConnectionThread {
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    static var isRunningJob: Bool {
        get { pthread_getspecific(key) != nil }
        set { pthread_setspecific(key, newValue ? UnsafeRawPointer(bitPattern: 1) : nil) }
    }
}
