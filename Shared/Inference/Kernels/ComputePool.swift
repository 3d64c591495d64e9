import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Runs the independent pieces of one computation on a fixed set of threads.
///
/// A decode step makes about 200 parallel sections of a few microseconds each, so dispatching them
/// through a general-purpose queue costs as much as the work; this pool keeps `threads − 1` workers
/// spinning briefly between sections (then sleeping), and the calling thread takes part.
///
/// Results never depend on the thread count: callers split work into pieces whose outputs are
/// disjoint, each computed by one fixed sequence of operations.
final class ComputePool: @unchecked Sendable {
    // Sendable: `threads` is immutable and `state` synchronises itself.
    let threads: Int
    private let state: PoolState
    private var handles: [pthread_t] = []

    init(threads: Int) {
        self.threads = max(1, threads)
        state = PoolState()
        for _ in 1..<self.threads {
            let context = Unmanaged.passRetained(state).toOpaque()
            var handle = pthread_t()
            let created = pthread_create(
                &handle, nil,
                { raw in
                    // The context is the retained PoolState passed below; the worker releases it on exit.
                    guard let raw else { return nil }
                    let state = Unmanaged<PoolState>.fromOpaque(raw).takeRetainedValue()
                    state.workerLoop()
                    return nil
                }, context)
            if created == 0 {
                handles.append(handle)
            } else {
                Unmanaged<PoolState>.fromOpaque(context).release()
            }
        }
    }

    deinit {
        state.shutDown()
        for handle in handles { pthread_join(handle, nil) }
    }

    /// Calls `body(i)` for every `i` in `0..<count`, spread over the pool's threads; returns when
    /// all calls have returned.
    func forEach(_ count: Int, _ body: @Sendable (Int) -> Void) {
        if handles.isEmpty || count <= 1 {
            for i in 0..<count { body(i) }
            return
        }
        withoutActuallyEscaping(body) { escapable in
            state.run(count: count, body: escapable)
        }
    }

    /// Splits `0..<total` into about `threads` contiguous ranges and runs them.
    func forRanges(_ total: Int, _ body: @Sendable (Range<Int>) -> Void) {
        let pieces = min(threads, total)
        if pieces <= 1 {
            if total > 0 { body(0..<total) }
            return
        }
        forEach(pieces) { piece in
            body((total * piece / pieces)..<(total * (piece + 1) / pieces))
        }
    }
}

/// One parallel section: its body and the global index range it owns.
private final class PoolJob: @unchecked Sendable {
    // Sendable: immutable.
    let body: @Sendable (Int) -> Void
    let base: Int
    let end: Int

    init(body: @escaping @Sendable (Int) -> Void, base: Int, count: Int) {
        self.body = body
        self.base = base
        end = base + count
    }
}

/// The shared job board of a pool: one section at a time.
///
/// Indices are claimed from one counter that only grows; a section owns `base..<end`, and a claim
/// succeeds only below the claimer's `end`, so a worker still holding a finished section can never
/// take an index of the next one. The caller waits until every claimed index has run and every
/// worker has let go of the section before it returns.
private final class PoolState: @unchecked Sendable {
    // Sendable: `job` is read and written only under `mutex`; counters are atomics.
    private var job: PoolJob?
    private let generation = Atomic<Int>(0)
    private let nextIndex = Atomic<Int>(0)
    private let remaining = Atomic<Int>(0)
    private let active = Atomic<Int>(0)
    private let sleepers = Atomic<Int>(0)
    private let stopping = Atomic<Bool>(false)
    private var mutex = pthread_mutex_t()
    private var condition = pthread_cond_t()

    /// Spins before a worker sleeps (a fraction of a millisecond): long enough to bridge the gaps
    /// between sections of one step and between the steps of a batched decode (sampling, the next
    /// batch). At 20,000 a worker fell asleep in those gaps and joined the next section late, and
    /// 16-sequence decode at 2 threads ran 5–15% slower.
    private static let spinIterations = 200_000

    init() {
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&condition, nil)
    }

    deinit {
        pthread_cond_destroy(&condition)
        pthread_mutex_destroy(&mutex)
    }

    func run(count: Int, body: @escaping @Sendable (Int) -> Void) {
        pthread_mutex_lock(&mutex)
        let section = PoolJob(body: body, base: nextIndex.load(ordering: .sequentiallyConsistent), count: count)
        job = section
        remaining.store(count, ordering: .sequentiallyConsistent)
        generation.add(1, ordering: .sequentiallyConsistent)
        if sleepers.load(ordering: .sequentiallyConsistent) > 0 { pthread_cond_broadcast(&condition) }
        pthread_mutex_unlock(&mutex)
        work(section)
        // Close the section before waiting: a worker joins only while `job` is set (under the
        // mutex), so once it is cleared the `active` count can only fall, and no worker can still
        // hold the body when this returns. (Clearing it after the wait let a late worker take the
        // section between the wait and the clear, keeping the caller's non-escaping body alive.)
        pthread_mutex_lock(&mutex)
        job = nil
        pthread_mutex_unlock(&mutex)
        // Wait for the other threads; yield the core after a while in case a worker was descheduled
        // (an oversubscribed machine), rather than spinning through the time slice it needs.
        var spins = 0
        while remaining.load(ordering: .sequentiallyConsistent) > 0 || active.load(ordering: .sequentiallyConsistent) > 0 {
            spins += 1
            if spins > 200_000 { sched_yield() }
        }
    }

    /// Claims and runs indices of `section` until none are left.
    private func work(_ section: PoolJob) {
        var i = nextIndex.load(ordering: .sequentiallyConsistent)
        while i < section.end {
            let (exchanged, original) = nextIndex.compareExchange(
                expected: i, desired: i + 1, ordering: .sequentiallyConsistent)
            if exchanged {
                section.body(i - section.base)
                remaining.subtract(1, ordering: .sequentiallyConsistent)
                i += 1
            } else {
                i = original
            }
        }
    }

    /// Takes part in the current section, if any. Returns whether it did; its own frame ends the
    /// worker's reference to the section before the caller reports it inactive.
    @inline(never)
    private func joinCurrent() -> Bool {
        pthread_mutex_lock(&mutex)
        let section = job
        if section != nil { active.add(1, ordering: .sequentiallyConsistent) }
        pthread_mutex_unlock(&mutex)
        guard let section else { return false }
        work(section)
        return true
    }

    func workerLoop() {
        var seen = 0
        while true {
            var spins = 0
            var current = generation.load(ordering: .sequentiallyConsistent)
            while current == seen, !stopping.load(ordering: .relaxed) {
                spins += 1
                if spins < Self.spinIterations {
                    current = generation.load(ordering: .sequentiallyConsistent)
                    continue
                }
                pthread_mutex_lock(&mutex)
                sleepers.add(1, ordering: .sequentiallyConsistent)
                current = generation.load(ordering: .sequentiallyConsistent)
                while current == seen, !stopping.load(ordering: .sequentiallyConsistent) {
                    pthread_cond_wait(&condition, &mutex)
                    current = generation.load(ordering: .sequentiallyConsistent)
                }
                sleepers.subtract(1, ordering: .sequentiallyConsistent)
                pthread_mutex_unlock(&mutex)
                spins = 0
            }
            if stopping.load(ordering: .sequentiallyConsistent) { return }
            seen = current
            if joinCurrent() { active.subtract(1, ordering: .sequentiallyConsistent) }
        }
    }

    func shutDown() {
        stopping.store(true, ordering: .sequentiallyConsistent)
        pthread_mutex_lock(&mutex)
        pthread_cond_broadcast(&condition)
        pthread_mutex_unlock(&mutex)
    }
}
