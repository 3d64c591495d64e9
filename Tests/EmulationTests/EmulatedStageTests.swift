import Emulation
import Partitioning
import Profiles
import Synchronization
import Testing

/// A clock that never sleeps: it records each deadline asked for and jumps to it.
final class RecordingClock: HoldClock, Sendable {
    private let state = Mutex<(now: Double, deadlines: [Double])>((0, []))

    init(startingAt now: Double = 0) { state.withLock { $0.now = now } }

    func now() -> Double { state.withLock { $0.now } }
    func sleep(until deadline: Double) {
        state.withLock {
            $0.deadlines.append(deadline)
            $0.now = max($0.now, deadline)
        }
    }
    /// Work done before a hold (decoding inputs, building outputs).
    func advance(by seconds: Double) { state.withLock { $0.now += seconds } }
    var deadlines: [Double] { state.withLock { $0.deadlines } }
}

private func phi3Medium() throws -> StepCostModel {
    StepCostModel(source: try ModelSource.load("phi-3-medium:q4_0"))
}

@Suite("Profile executor: holds and memory of an emulated device")
struct EmulatedStageTests {
    @Test("A step is held for its roofline time on the device × the time scale, prefill and decode alike", arguments: [1.0, 0.1])
    func holdsRooflineTime(scale: Double) throws {
        let costs = try phi3Medium()
        let cost = costs.stage(firstBlock: 0, lastBlock: 13, holdsEmbedding: true, holdsHead: false)
        let t4 = DevicePreset.t4.figures
        let stage = try EmulatedStage(cost: cost, device: t4, timeScale: try TimeScale(scale), blocks: "0...13")
        let clock = RecordingClock(startingAt: 100)
        let steps: [[StepShape]] = [
            [.prefill(position: 0, tokens: 512)],
            [.prefill(position: 1536, tokens: 512)],
            [.decode(context: 10)],
            [.decode(context: 3000)],
            (0..<8).map { .decode(context: 500 * $0) },
        ]
        for batch in steps {
            let start = clock.now()
            clock.advance(by: 0.0005)  // the executor's own work counts inside the hold
            let held = stage.hold(batch, startedAt: start, on: clock)
            let roofline = cost.seconds(batch: batch, on: t4)
            #expect(abs(held - roofline * scale) <= 1e-12 * roofline)
            #expect(abs(clock.deadlines.last! - (start + roofline * scale)) <= 1e-9)
        }
        // The roofline itself, by hand: a lone decode is memory-bound on a T4 (weights / bandwidth),
        // and a prefill chunk is compute-bound, dearer deeper into the context.
        let decode = stage.holdSeconds([.decode(context: 10)])
        #expect(abs(decode - cost.streamedWeightBytes / 320e9 * scale) <= 1e-12)
        let early = stage.holdSeconds([.prefill(position: 0, tokens: 512)])
        let late = stage.holdSeconds([.prefill(position: 1536, tokens: 512)])
        #expect(abs(early - cost.flops(.prefill(position: 0, tokens: 512)) / 65e12 * scale) <= 1e-12)
        // 512 tokens, each reading 1536 more positions than at the start of the prompt.
        let attention = cost.attentionFlopsPerPosition * 512 * 1536 / 65e12 * scale
        #expect(late > early)
        #expect(abs((late - early) - attention) <= 1e-9 * late)
    }

    @Test("Decode attention grows with the context once FLOPs bind: a large batch deep in its context takes longer")
    func decodeAttentionGrows() throws {
        let cost = try phi3Medium().stage(firstBlock: 0, lastBlock: 39, holdsEmbedding: true, holdsHead: true)
        let stage = try EmulatedStage(cost: cost, device: DevicePreset.a100_80GB.figures, timeScale: .real, blocks: "0...39")
        let shallow = stage.holdSeconds(Array(repeating: .decode(context: 100), count: 256))
        let deep = stage.holdSeconds(Array(repeating: .decode(context: 4000), count: 256))
        #expect(deep > shallow * 1.1)
    }

    @Test("Blocks whose weights exceed the device's memory are refused at assignment, naming blocks and bytes")
    func refusesWhatDoesNotFit() throws {
        let cost = StepCostModel(source: try ModelSource.load("phi-3-medium:f16"))
            .stage(firstBlock: 0, lastBlock: 39, holdsEmbedding: true, holdsHead: true)
        let jetson = DevicePreset.jetsonOrinNano.figures
        #expect(throws: EmulationError.self) {
            try EmulatedStage(cost: cost, device: jetson, timeScale: .real, blocks: "0...39")
        }
        do {
            _ = try EmulatedStage(cost: cost, device: jetson, timeScale: .real, blocks: "0...39")
        } catch {
            #expect(error.description.contains("blocks 0...39"))
            #expect(error.description.contains("\(Int64(jetson.memoryBytes)) bytes of memory"))
        }
    }

    @Test("What the weights leave of the device's memory is the KV budget")
    func kvBudget() throws {
        let cost = try phi3Medium().stage(firstBlock: 0, lastBlock: 9, holdsEmbedding: true, holdsHead: false)
        let device = DeviceFigures(flops: 1e13, memoryBandwidthBytesPerSecond: 1e11, memoryBytes: 6e9)
        let stage = try EmulatedStage(cost: cost, device: device, timeScale: .real, blocks: "0...9")
        #expect(stage.kvBudgetBytes == 6e9 - cost.weightBytes)
        #expect(cost.kvBytesPerToken > 0)
    }

    @Test("A time scale must be a finite number > 0, and its note says broker overhead is not scaled")
    func timeScale() throws {
        for bad in [0.0, -1, .nan, .infinity] {
            #expect(throws: EmulationError.self) { try TimeScale(bad) }
        }
        let tenth = try TimeScale(0.1)
        #expect(tenth.wallSeconds(2) == 0.2)
        #expect(abs(tenth.emulatedSeconds(wall: 0.2) - 2) < 1e-12)
        #expect(tenth.note.contains("unscaled"))
        #expect(TimeScale.real.note.contains("broker overhead is real"))
    }
}

@Suite("Profile executor: the device's timeline")
struct DeviceTimelineTests {
    @Test("A hold the machine overshoots is made up by the batch waiting behind it; an idle device starts a batch when it is ready")
    func catchesUp() {
        var timeline = DeviceTimeline()
        #expect(timeline.start(readyAt: 0, seconds: 1) == 0)
        // The first hold really ended at 1.3 (preempted); the second batch was waiting since 0.5:
        // the device would have started it at 1.0, so its hold ends at 2.0, not 2.3.
        #expect(timeline.start(readyAt: 0.5, seconds: 1) == 1)
        #expect(timeline.freeAt == 2)
        // A batch that arrives after the device went idle starts on arrival.
        #expect(timeline.start(readyAt: 5, seconds: 0.25) == 5)
        #expect(timeline.freeAt == 5.25)
    }

    @Test("Back to back, a busy node's holds add up to the roofline of its batches, however late each hold ends")
    func streamKeepsThroughput() throws {
        let cost = StepCostModel(source: try ModelSource.load("phi-3-medium:q4_0"))
            .stage(firstBlock: 0, lastBlock: 12, holdsEmbedding: true, holdsHead: false)
        let stage = try EmulatedStage(cost: cost, device: DevicePreset.t4.figures, timeScale: try TimeScale(0.1), blocks: "0...12")
        let clock = RecordingClock()
        var timeline = DeviceTimeline()
        let batch: [StepShape] = [.decode(context: 700)]
        for index in 0..<100 {
            stage.hold(batch, startedAt: timeline.start(readyAt: 0, seconds: stage.holdSeconds(batch)), on: clock)
            if index % 7 == 0 { clock.advance(by: stage.holdSeconds(batch) * 0.5) }  // preempted now and then
        }
        // The last deadline asked for is exactly 100 holds after the start.
        #expect(abs(clock.deadlines.last! - 100 * stage.holdSeconds(batch)) < 1e-9)
    }
}
