import Partitioning
import Profiles

/// A stage's block range on an emulated device (docs/design.md §11, the `profile` executor): how long
/// a step or batch takes there and how much KV cache fits beside the weights, both from the one
/// step-time model the planner and simulator use (`StageStepCost`), never from a formula of its own.
public struct EmulatedStage: Sendable {
    public let cost: StageStepCost
    public let device: DeviceFigures
    public let timeScale: TimeScale

    /// Refuses a range whose weights do not fit the device's memory, as loading it on the device
    /// would fail; `blocks` names the range in the message.
    public init(cost: StageStepCost, device: DeviceFigures, timeScale: TimeScale, blocks: String) throws(EmulationError) {
        guard cost.weightBytes < device.memoryBytes else {
            throw EmulationError(
                "blocks \(blocks) hold \(Int64(cost.weightBytes.rounded(.up))) bytes of weights, more than the emulated device's \(Int64(device.memoryBytes)) bytes of memory")
        }
        self.cost = cost
        self.device = device
        self.timeScale = timeScale
    }

    /// What the device has left for KV cache once the weights are loaded.
    public var kvBudgetBytes: Double { device.memoryBytes - cost.weightBytes }

    /// Roofline seconds of a batch (steps of distinct requests computed together) on the device.
    public func rooflineSeconds(_ batch: [StepShape]) -> Double { cost.seconds(batch: batch, on: device) }

    /// Wall-clock seconds the batch is held for: its roofline time × the time scale.
    public func holdSeconds(_ batch: [StepShape]) -> Double { timeScale.wallSeconds(rooflineSeconds(batch)) }

    /// Holds the calling thread until `holdSeconds(batch)` after `start`, the moment the batch
    /// began: the executor's own work before the hold (decoding inputs, building outputs) is part
    /// of the step's time, as it would be on the device. Returns the hold asked for.
    @discardableResult
    public func hold(_ batch: [StepShape], startedAt start: Double, on clock: some HoldClock) -> Double {
        let seconds = holdSeconds(batch)
        clock.sleep(until: start + seconds)
        return seconds
    }
}

/// The emulated device's own timeline, as a GPU stream runs batches back to back: a batch starts
/// when the device is free or when it was ready, whichever is later. A hold the machine overshoots
/// (the holding thread was preempted) is made up by the next batch if that one was already
/// waiting, since the device would have started it on time; so a busy node keeps the device's
/// throughput even on a loaded machine, and jitter does not add up. Pure: times are passed in.
public struct DeviceTimeline: Sendable {
    /// When the device finishes what it has been given (wall-clock seconds).
    public private(set) var freeAt = -Double.infinity

    public init() {}

    /// Takes a batch ready since `readyAt` that holds the device for `seconds`; returns when it
    /// started on the device (what `EmulatedStage.hold` counts from).
    public mutating func start(readyAt: Double, seconds: Double) -> Double {
        let start = max(freeAt, readyAt)
        freeAt = start + seconds
        return start
    }
}
