import Dispatch

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Watches SIGTERM and SIGINT so a service can drain instead of dying mid-request.
public final class TerminationSignals: @unchecked Sendable {
    // Sendable: `sources` is set once in init; DispatchSource.cancel is thread-safe.
    private let sources: [any DispatchSourceSignal]

    /// Calls `handler` on every SIGTERM or SIGINT until `cancel()`.
    public init(_ handler: @escaping @Sendable (Int32) -> Void) {
        sources = [SIGTERM, SIGINT].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { handler(number) }
            source.resume()
            return source
        }
    }

    public func cancel() {
        for source in sources { source.cancel() }
    }
}

/// Blocks the calling thread (a dedicated one, never the cooperative pool) for `seconds`.
public func sleepThread(seconds: Double) {
    guard seconds > 0 else { return }
    var request = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - Double(Int(seconds))) * 1e9))
    var remaining = timespec()
    while nanosleep(&request, &remaining) != 0 { request = remaining }
}
