import Dispatch
import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// The C allocator's own account of a process's heap, from glibc's `malloc_info`.
///
/// Resident memory says how many pages the process touched, which grows with fragmentation and
/// arena growth that no free can undo; bytes in use say how much is allocated and not yet freed,
/// which only a leak (or a cache that keeps filling) makes grow. Swift's allocations go through
/// the same `malloc`, so both Swift objects and the C libraries' buffers are counted.
public struct HeapStatistics: Sendable, Equatable {
    /// Allocated and not freed: the arenas' memory minus their free chunks, plus the chunks that
    /// were mapped on their own.
    public var inUseBytes: Int
    /// What the arenas hold from the system (`system current`, summed over arenas).
    public var arenaBytes: Int
    /// Free chunks kept in the arenas (fast bins and the rest).
    public var freeBytes: Int
    /// Chunks mapped on their own (above the mmap threshold).
    public var mappedBytes: Int

    public init(inUseBytes: Int, arenaBytes: Int, freeBytes: Int, mappedBytes: Int) {
        self.inUseBytes = inUseBytes
        self.arenaBytes = arenaBytes
        self.freeBytes = freeBytes
        self.mappedBytes = mappedBytes
    }

    /// The process's statistics now, or nil where the C library has no `malloc_info` (not glibc).
    public static func current() -> HeapStatistics? {
        #if canImport(Glibc)
            typealias MallocInfo = @convention(c) (Int32, UnsafeMutablePointer<FILE>?) -> Int32
            // glibc declares malloc_info in <malloc.h>, which the Glibc module does not import;
            // the symbol is looked up instead (a null handle is RTLD_DEFAULT).
            guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_info") else { return nil }
            let mallocInfo = unsafeBitCast(symbol, to: MallocInfo.self)
            var buffer: UnsafeMutablePointer<CChar>? = nil
            var size = 0
            guard let stream = open_memstream(&buffer, &size) else { return nil }
            let status = mallocInfo(0, stream)
            fclose(stream)
            defer { free(buffer) }
            guard status == 0, let buffer else { return nil }
            return parse(mallocInfo: String(cString: buffer))
        #else
            return nil
        #endif
    }

    /// Reads the totals over all arenas: the elements after the last `</heap>` of `malloc_info`'s
    /// XML (`<total type="fast|rest|mmap" count=… size=…/>`, `<system type="current" size=…/>`).
    public static func parse(mallocInfo xml: String) -> HeapStatistics? {
        let totals: Substring
        if let lastHeap = xml.range(of: "</heap>", options: .backwards) {
            totals = xml[lastHeap.upperBound...]
        } else {
            totals = xml[...]
        }
        func size(of element: String) -> Int? {
            guard let start = totals.range(of: element) else { return nil }
            let rest = totals[start.upperBound...]
            guard let attribute = rest.range(of: "size=\"") else { return nil }
            return Int(rest[attribute.upperBound...].prefix { $0.isNumber })
        }
        guard let fast = size(of: "<total type=\"fast\""), let free = size(of: "<total type=\"rest\""),
            let mapped = size(of: "<total type=\"mmap\""), let current = size(of: "<system type=\"current\"")
        else { return nil }
        return HeapStatistics(
            inUseBytes: current - fast - free + mapped, arenaBytes: current, freeBytes: fast + free, mappedBytes: mapped)
    }
}

/// Logs the heap statistics whenever the process gets SIGUSR1 (`kill -USR1 PID`), one line:
/// `heap statistics` with `heap_in_use_bytes`, `heap_arena_bytes`, `heap_free_bytes` and
/// `heap_mapped_bytes`. A way to watch a long-running service's memory without stopping it, and
/// what the soak test reads.
public final class HeapStatisticsSignal: @unchecked Sendable {
    // Sendable: `source` is set once in init; DispatchSource.cancel is thread-safe.
    private let source: any DispatchSourceSignal

    public init(logger: Logger) {
        signal(SIGUSR1, SIG_IGN)
        source = DispatchSource.makeSignalSource(signal: SIGUSR1, queue: .global())
        source.setEventHandler {
            guard let statistics = HeapStatistics.current() else {
                logger.warning("heap statistics unavailable: the C library has no malloc_info")
                return
            }
            logger.info(
                "heap statistics",
                metadata: [
                    "heap_in_use_bytes": "\(statistics.inUseBytes)", "heap_arena_bytes": "\(statistics.arenaBytes)",
                    "heap_free_bytes": "\(statistics.freeBytes)", "heap_mapped_bytes": "\(statistics.mappedBytes)",
                ])
        }
        source.resume()
    }

    public func cancel() { source.cancel() }
}
