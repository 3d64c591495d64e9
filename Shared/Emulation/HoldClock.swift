#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where emulated durations are spent: a clock to read and a way to wait until a moment on it.
///
/// Emulation holds steps and messages for computed durations; passing the clock in keeps that
/// arithmetic testable to the nanosecond (a test clock records the requested waits instead of
/// sleeping) while services use `MonotonicHoldClock`.
public protocol HoldClock: Sendable {
    /// Seconds on a monotonic clock.
    func now() -> Double
    /// Blocks the calling thread until `now() >= deadline` (returns at once for a past deadline).
    func sleep(until deadline: Double)
}

/// The machine's monotonic clock. Sleeps in the kernel until just before the deadline, then
/// spins until it passes, so holds of a fraction of a millisecond stay accurate: a `nanosleep`
/// alone overshoots by 50–100 µs here, and yielding the core instead of spinning can lose it for a
/// whole time slice (milliseconds) on a loaded machine. The spin costs at most `spinSeconds` of
/// CPU per hold.
public struct MonotonicHoldClock: HoldClock {
    /// How long before the deadline the kernel sleep ends and spinning takes over.
    public var spinSeconds: Double

    public init(spinSeconds: Double = 100e-6) {
        self.spinSeconds = spinSeconds
    }

    public func now() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }

    public func sleep(until deadline: Double) {
        let kernelSleep = deadline - spinSeconds - now()
        if kernelSleep > 0 {
            let whole = kernelSleep.rounded(.down)
            var request = timespec(tv_sec: Int(whole), tv_nsec: Int((kernelSleep - whole) * 1e9))
            var remaining = timespec()
            while nanosleep(&request, &remaining) != 0 { request = remaining }
        }
        while now() < deadline {}
    }
}
