import AMQP
import Dispatch
import Emulation
import Inference
import JSON
import Logging
import Messages
import Partitioning
import Profiles
import Scheduling
import ServiceSupport
import GGUF

/// Everything a worker is configured with.
struct StageWorkerSettings: Sendable {
    var amqpURL: String
    var tier: String
    var nodeID: String
    var modelPath: String
    var threads: Int
    var maxBatchSteps: Int
    var maxBatchTokens: Int
    var device: String?
    var nominal: DeviceFigures
    var slowdown: Double
    var heartbeatSeconds: Double
    var idleCacheSeconds: Double
    var drainSeconds: Double
    /// How long a batch smaller than the sequences held waits for more of their steps.
    var batchWaitSeconds: Double = 0.003
    /// Caps the KV budget below what the advertised memory leaves (tests, small experiments).
    var kvBudgetBytes: Double? = nil
    /// `real` runs the model's blocks; `profile` holds each batch for its roofline time on `nominal`.
    var executor: ExecutorKind = .real
    /// Multiplies the profile executor's holds (docs/design.md §11).
    var timeScale: TimeScale = .real
    /// The token the profile executor's last stage answers with.
    var dummyToken: Int32 = ProfileExecutor.defaultDummyToken
    /// Emulated link that this node's activations cross to the next stage (nil: straight there).
    var link: String?
    /// Emulated link that this node's `sampled` events cross back to the scheduler.
    var returnLink: String?

    var queue: String { Names.Queue.stage(tier: tier, node: nodeID) }
}

/// How a worker computes its steps (docs/design.md §11).
enum ExecutorKind: String, Sendable, CaseIterable {
    case real, profile
}

/// A start-up failure a user can act on.
struct StageWorkerError: Error, CustomStringConvertible {
    var description: String
}

/// What the worker's loop reacts to, one at a time.
private enum WorkerEvent: Sendable {
    case plan(AMQPDelivery)
    case delivery(AMQPDelivery)
    case batchDone(BatchOutcome)
    case tick
    case terminate
    /// Start the next batch, once the deliveries already received have joined the queue.
    case formBatch
    case consumerEnded(String)
}

/// A computed batch: per step its result, and the time it took.
private struct BatchOutcome: Sendable {
    var steps: [QueuedStep]
    var results: Result<[ExecutorResult], InferenceError>
    var busySeconds: Double
    /// The compute thread's own time for the batch: CPU seconds over the threads that ran it,
    /// never above the wall time (waits for a core shared with other processes left out).
    var computeSeconds: Double
    var finishedAt: Double
}

/// The stage-worker process: the broker shell around `StageCore` and a `StageExecutor`.
final class StageWorkerService: @unchecked Sendable {
    // Sendable: all mutable state is touched only by the task running `run()`'s event loop; the
    // executor only on `computeThread`.
    private let settings: StageWorkerSettings
    private let logger: Logger
    private let instance = ProcessEnvironment.uuid()
    private let computeThread = DedicatedThread(name: "stage-compute")

    private var model: TransformerModel?
    /// The model a profile worker emulates (no weights are loaded).
    private var profileSource: ModelSource?
    private var modelSHA256 = ""
    private var costs: StepCostModel?
    /// The executor of the newest plan; `executors` holds one per plan version served (a
    /// replaced version keeps its blocks until its keys are released; equal ranges share one).
    private var executor: (any StageExecutor)?
    private var executors: [Int64: any StageExecutor] = [:]
    private var core: StageCore?
    /// The newest plan; `plans` holds every version served.
    private var plan: PlanDocument?
    private var plans: [Int64: PlanDocument] = [:]
    /// The emulated device's KV budget for the newest plan (profile executor).
    private var emulatedKVBudget: Double?
    private var computing = false
    private var batchRequested = false
    private var draining = false
    private var drainDeadline = Double.infinity
    private var deliveries: [UInt64: AMQPDelivery] = [:]
    private var nextTag: UInt64 = 0
    private var speed = SpeedMeter()
    /// The compute speed planning trusts (apart from `speed`, which routing uses).
    private var computeSpeed = ComputeSpeedMeter()
    private var batchMeter = BatchMeter()
    private var batchesInInterval = Telemetry.Batches()
    private var busyInInterval = 0.0
    private var tokensInInterval = 0
    private var lastBeat = Clock.monotonicSeconds()
    private var stageConsumer: AMQPConsumer?

    private var inbound: AMQPConnection?
    private var outbound: AMQPConnection?
    private var events: AsyncStream<WorkerEvent>.Continuation?

    init(settings: StageWorkerSettings) {
        self.settings = settings
        var logger = Logger(label: "hyperion.stage-worker")
        logger[metadataKey: "node"] = "\(settings.nodeID)"
        logger[metadataKey: "tier"] = "\(settings.tier)"
        self.logger = logger
    }

    func run() async throws {
        try loadModel()
        let url: AMQPURL
        do { url = try AMQPURL(settings.amqpURL) } catch { throw StageWorkerError(description: "\(error)") }
        let inbound = try await AMQPConnection.connect(
            to: url, configuration: AMQPConnectionConfiguration(connectionName: "worker-\(settings.nodeID)-in", heartbeatSeconds: 10),
            logger: logger)
        let outbound = try await AMQPConnection.connect(
            to: url, configuration: AMQPConnectionConfiguration(connectionName: "worker-\(settings.nodeID)-out", heartbeatSeconds: 10),
            logger: logger)
        self.inbound = inbound
        self.outbound = outbound
        try await BrokerObjects.declareShared(for: .worker, on: inbound)
        for link in [settings.link, settings.returnLink].compactMap({ $0 }) {
            try await BrokerObjects.declareLinkQueue(Names.Queue.link(link), on: inbound)
        }

        let (stream, continuation) = AsyncStream.makeStream(of: WorkerEvent.self)
        events = continuation
        let planQueue = Names.Queue.subscription(owner: settings.queue, purpose: "plan")
        try await BrokerObjects.declareSubscription(planQueue, to: Names.Exchange.plan, on: inbound)
        let planConsumer = try await inbound.consume(queue: planQueue, prefetchCount: 4)
        EventPump.forward(planConsumer, named: "plan", into: continuation, as: WorkerEvent.plan, ended: WorkerEvent.consumerEnded)
        EventPump.tick(every: settings.heartbeatSeconds, into: continuation, .tick)
        let signals = TerminationSignals { _ in continuation.yield(.terminate) }
        defer { signals.cancel() }
        let heapSignal = HeapStatisticsSignal(logger: logger)
        defer { heapSignal.cancel() }
        let planFetch = PlanFetch.start(on: outbound) { continuation.yield(.plan($0)) }
        defer { planFetch.cancel() }
        logger.info("waiting for a plan", metadata: ["model_sha256": "\(modelSHA256.prefix(12))"])

        for await event in stream {
            switch event {
            case .plan(let delivery): await handlePlan(delivery)
            case .delivery(let delivery): await handleDelivery(delivery)
            case .batchDone(let outcome): await finishBatch(outcome)
            case .tick: await tick()
            case .terminate: beginDrain(reason: "SIGTERM")
            case .formBatch:
                batchRequested = false
                startBatchIfIdle()
            case .consumerEnded(let name):
                if draining { break }
                logger.error("consumer of \(name) ended; exiting")
                throw StageWorkerError(description: "the broker cancelled the consumer of \(name)")
            }
            await retireReplacedPlans()
            requestBatch()
            if draining, isIdle || Clock.monotonicSeconds() > drainDeadline {
                logger.info("drained; exiting", metadata: ["held": "\(core?.activeSequences ?? 0)"])
                break
            }
        }
        await publishTelemetry(state: .draining)
        computeThread.close()
        await inbound.close()
        await outbound.close()
    }

    private var isIdle: Bool {
        !computing && (core?.queued.isEmpty ?? true) && (core?.activeSequences ?? 0) == 0
    }

    // MARK: Start-up

    private func loadModel() throws {
        if settings.executor == .profile {
            // The emulated model's profile only: a preset, a custom profile or a GGUF's metadata.
            do {
                let source = try ModelSource.load(settings.modelPath)
                profileSource = source
                costs = StepCostModel(source: source)
                modelSHA256 = source.profile(for: .default).sha256 ?? ""
            } catch {
                throw StageWorkerError(description: "cannot load model profile \(settings.modelPath): \(error)")
            }
            return
        }
        do {
            let file = try GGUFFile(path: settings.modelPath)
            modelSHA256 = SHA256.hex(file.bytes)
            model = try TransformerModel(file: file)
            costs = StepCostModel(source: try ModelSource.load(settings.modelPath))
        } catch {
            throw StageWorkerError(description: "cannot load model \(settings.modelPath): \(error)")
        }
    }

    // MARK: Plans

    private func handlePlan(_ delivery: AMQPDelivery) async {
        delivery.ack()
        let document: PlanDocument
        do {
            document = try PlanDocument.parse(try JSONValue.parse(bytes: delivery.body))
        } catch {
            logger.warning("ignoring a plan message: \(error)")
            return
        }
        if let current = plan, document.version <= current.version { return }
        if let sha = document.modelSHA256, sha != modelSHA256 {
            logger.error("refusing plan \(document.version): it is for model \(sha.prefix(12))…, this node's file is \(modelSHA256.prefix(12))…")
            return
        }
        if document.modelSHA256 == nil, let profileSource, document.modelName != profileSource.name {
            logger.error("refusing plan \(document.version): it is for model \(document.modelName), this node emulates \(profileSource.name)")
            return
        }
        guard document.partition.stages.contains(where: { $0.tierName == settings.tier }) else {
            logger.notice(
                "plan \(document.version) leaves tier \(settings.tier) out (no blocks on it); standing by for a plan that gives it blocks")
            return
        }
        // New keys take the new plan at once; the keys held on the old one finish on it.
        await adopt(document)
    }

    /// Unloads the replaced plan versions whose keys are all released (checked after every
    /// event, so releasing the last held key frees its blocks at once).
    private func retireReplacedPlans() async {
        guard var core, !core.replaced.isEmpty else { return }
        let retired = core.retireReplaced(now: Clock.monotonicSeconds())
        guard !retired.isEmpty else { return }
        for version in retired {
            executors[version] = nil
            plans[version] = nil
        }
        core.setKVBudget(kvBudget())
        self.core = core
        logger.info("plan \(retired.map(String.init).joined(separator: ", ")) released its last request; serving plan \(core.assignment.planVersion) alone")
    }

    /// What the advertised memory leaves for KV caches beside the weights of every block range
    /// loaded (the newest plan's and those of replaced plans still held), capped by `--kv-budget-bytes`.
    private func kvBudget() -> Double {
        var seen: [ObjectIdentifier: Double] = [:]
        for (version, executor) in executors {
            seen[ObjectIdentifier(executor)] = weightBytes(of: version)
        }
        let memory = settings.executor == .profile ? (emulatedKVBudget ?? settings.nominal.memoryBytes) : settings.nominal.memoryBytes
        let weights = settings.executor == .profile ? 0 : seen.values.reduce(0, +)
        return max(0, min(memory - weights, settings.kvBudgetBytes ?? .infinity))
    }

    /// Weight bytes of this tier's blocks in a plan version served.
    private func weightBytes(of version: Int64) -> Double {
        guard let model, let stage = plans[version]?.partition.stages.first(where: { $0.tierName == settings.tier }) else { return 0 }
        return Double(model.weightBytes(blocks: stage.firstBlock..<(stage.lastBlock + 1)))
    }

    /// Loads the tier's range of `document` (reusing an executor already loaded with that range)
    /// and serves it for new keys; keys held on earlier plans stay on theirs.
    private func adopt(_ document: PlanDocument) async {
        guard let stageIndex = document.partition.stages.firstIndex(where: { $0.tierName == settings.tier }) else { return }
        if settings.executor == .profile {
            guard let emulated = emulatedExecutor(for: document.partition.stages[stageIndex], of: document) else { return }
            emulatedKVBudget = emulated.kvBudgetBytes
            await serve(document, stageIndex: stageIndex, executor: emulated.executor)
            return
        }
        guard let model else { return }
        let stage = document.partition.stages[stageIndex]
        let weights = Double(model.weightBytes(blocks: stage.firstBlock..<(stage.lastBlock + 1)))
        guard weights < settings.nominal.memoryBytes else {
            logger.error("plan \(document.version) gives tier \(settings.tier) blocks \(stage.blockRange) (\(Int(weights)) bytes), more than this node's \(Int(settings.nominal.memoryBytes)) bytes")
            return
        }
        let loaded = executors.first { version, _ in
            plans[version]?.partition.stages.first { $0.tierName == settings.tier }
                .map { $0.firstBlock == stage.firstBlock && $0.lastBlock == stage.lastBlock } ?? false
        }?.value
        var chosen: (any StageExecutor)? = loaded
        if chosen == nil {
            let threads = settings.threads
            let built: Result<RealExecutor, InferenceError> = await computeThread.run {
                do { return .success(try RealExecutor(model: model, firstBlock: stage.firstBlock, lastBlock: stage.lastBlock, threads: threads)) }
                catch let error as InferenceError { return .failure(error) }
                catch { return .failure(InferenceError(code: "load", message: "\(error)")) }
            }
            switch built {
            case .success(let real): chosen = real
            case .failure(let error):
                logger.error("cannot load blocks \(stage.blockRange): \(error)")
                return
            }
        }
        guard let chosen else { return }
        await serve(document, stageIndex: stageIndex, executor: chosen)
    }

    /// The profile executor for `stage`, or nil (logged) when its blocks do not fit the emulated
    /// device: the plan is refused as a real device would fail to load them.
    private func emulatedExecutor(for stage: StagePrediction, of document: PlanDocument) -> (executor: ProfileExecutor, kvBudgetBytes: Double)? {
        guard let costs, let profileSource else { return nil }
        let cost = costs.stage(firstBlock: stage.firstBlock, lastBlock: stage.lastBlock, holdsEmbedding: stage.holdsEmbedding, holdsHead: stage.holdsHead)
        do {
            let emulated = try EmulatedStage(
                cost: cost, device: settings.nominal, timeScale: settings.timeScale, blocks: "\(stage.blockRange)")
            let executor = ProfileExecutor(
                stage: emulated, hiddenSize: ProfileExecutor.hiddenSize(of: profileSource), holdsHead: stage.holdsHead,
                dummyToken: settings.dummyToken, clock: MonotonicHoldClock())
            return (executor, emulated.kvBudgetBytes)
        } catch {
            logger.error("refusing plan \(document.version) for tier \(settings.tier): \(error)")
            return nil
        }
    }

    /// Serves `document` for new keys with `executor`.
    private func serve(_ document: PlanDocument, stageIndex: Int, executor: any StageExecutor) async {
        let stage = document.partition.stages[stageIndex]
        let assignment = StageAssignment(
            planVersion: document.version, stage: stageIndex, stageCount: document.partition.stages.count,
            hiddenSize: executor.hiddenSize, kvBytesPerToken: executor.kvBytesPerToken)
        let previous = plan?.version
        plans[document.version] = document
        executors[document.version] = executor
        self.executor = executor
        let kvBudgetBytes = kvBudget()
        if var core {
            core.reassign(assignment, kvBudgetBytes: kvBudgetBytes, now: Clock.monotonicSeconds())
            self.core = core
        } else {
            core = StageCore(
                settings: StageSettings(
                    node: settings.nodeID, queue: settings.queue, kvBudgetBytes: kvBudgetBytes,
                    maxBatchSteps: settings.maxBatchSteps, maxBatchTokens: settings.maxBatchTokens,
                    idleCacheSeconds: settings.idleCacheSeconds, contextTokens: model?.config.contextLength,
                    vocabularySize: model?.config.vocabularySize),
                assignment: assignment)
        }
        plan = document
        let blockCount = model?.config.blockCount ?? costs?.blockCount ?? 0
        let held = core?.replacedSequences ?? 0
        let keeping = previous != nil && held > 0 ? "; \(held) requests held on plan \(previous!) finish on it" : ""
        logger.info("serving plan \(document.version)\(keeping): blocks \(stage.blockRange) of \(blockCount), stage \(stageIndex + 1) of \(document.partition.stages.count)\(settings.executor == .profile ? ", emulated (\(settings.timeScale.note))" : "")")
        if stageConsumer == nil { await startServing() }
        await publishTelemetry(state: .serving)
    }

    private func startServing() async {
        guard let inbound, let events else { return }
        do {
            try await BrokerObjects.declareStageQueue(settings.queue, on: inbound)
            let consumer = try await inbound.consume(
                queue: settings.queue, prefetchCount: UInt16(clamping: settings.maxBatchSteps * 4), exclusive: true)
            stageConsumer = consumer
            EventPump.forward(consumer, named: settings.queue, into: events, as: WorkerEvent.delivery, ended: WorkerEvent.consumerEnded)
        } catch {
            logger.critical("cannot consume \(settings.queue): \(error) (is another node running with id \(settings.nodeID)?)")
            events.yield(.consumerEnded(settings.queue))
        }
    }

    // MARK: Steps and control

    private func handleDelivery(_ delivery: AMQPDelivery) async {
        let now = Clock.monotonicSeconds()
        guard var core else {
            delivery.nack(requeue: true)
            return
        }
        if delivery.properties.contentType == Names.ContentType.json {
            do {
                let message = try decodeMessage(ControlMessage.self, from: delivery.body)
                for directive in core.control(message, now: now) { apply(directive) }
                self.core = core
                delivery.ack()
            } catch {
                await deadLetter(delivery, reason: "control message: \(error)")
            }
            return
        }
        let header: StepHeader
        do {
            header = try StepHeader(amqpHeaders: delivery.properties.headers)
        } catch {
            await deadLetter(delivery, reason: "step headers: \(error)")
            return
        }
        nextTag += 1
        deliveries[nextTag] = delivery
        let step = QueuedStep(deliveryTag: nextTag, header: header, body: delivery.body, receivedAt: now)
        for directive in core.receive(step, now: now) { apply(directive) }
        self.core = core
    }

    private func apply(_ directive: StageDirective) {
        switch directive {
        case .ack(let tag):
            deliveries.removeValue(forKey: tag)?.ack()
        case .refuse(let tag, let schedulerQueue, let error):
            let delivery = deliveries.removeValue(forKey: tag)
            logger.debug("refused a step", metadata: ["key": "\(error.key)", "code": "\(error.code.rawValue)"])
            publishThenAck(
                AMQPMessage(body: encodeMessage(error), properties: AMQPProperties(contentType: Names.ContentType.json)),
                routingKey: schedulerQueue, delivery: delivery)
        case .freeCache(let cache):
            // The cache lives in the executor of its plan version; releasing it elsewhere is a no-op.
            var seen = Set<ObjectIdentifier>()
            for executor in executors.values where seen.insert(ObjectIdentifier(executor)).inserted {
                computeThread.submit { executor.release(cache) }
            }
        }
    }

    private func deadLetter(_ delivery: AMQPDelivery, reason: String) async {
        logger.warning("dead-lettering a message: \(reason)")
        if let outbound { try? await BrokerObjects.deadLetter(delivery.message, reason: reason, on: outbound) }
        delivery.ack()
    }

    /// Publishes through `hyperion.internal` with a confirm; acks `delivery` once confirmed, or
    /// requeues it when the broker did not take the message.
    private func publishThenAck(_ message: AMQPMessage, routingKey: String, delivery: AMQPDelivery?, through link: String? = nil) {
        guard let outbound else { return }
        let logger = logger
        var message = message
        var routingKey = routingKey
        if let link {
            // The link emulator delivers it to `routingKey` once the emulated link has carried it.
            var headers = message.properties.headers ?? [:]
            headers[Names.Header.linkDestination] = .string(routingKey)
            message.properties.headers = headers
            routingKey = Names.Queue.link(link)
        }
        Task {
            do throws(AMQPError) {
                try await outbound.publishConfirmed(message, exchange: Names.Exchange.internal, routingKey: routingKey, mandatory: true)
                delivery?.ack()
            } catch .returned {
                // The next node's queue is gone: its scheduler fails the request over on missing heartbeats.
                logger.warning("\(routingKey) is unreachable; dropping a step for it")
                delivery?.ack()
            } catch {
                logger.warning("publish to \(routingKey) failed (\(error)); requeueing its input")
                delivery?.nack(requeue: true)
            }
        }
    }

    // MARK: Batches

    /// Starts a batch only after the events already in the loop's stream: a previous stage
    /// publishes a batch's outputs back to back, and starting on the first of them would split
    /// one wave of steps into a batch of one and a batch of the rest.
    ///
    /// With `--batch-wait-ms`, a batch smaller than the sequences this node holds also waits that
    /// long for their steps, so that sequences drifting apart come together into waves — only
    /// when the node holds at least two sequences per stage of the pipeline: with fewer, waves
    /// of one apiece keep every stage (and core) busy, which beats batching them.
    private func requestBatch() {
        guard !computing, !batchRequested, let core, !core.queued.isEmpty, let events else { return }
        batchRequested = true
        let ready = Set(core.queued.map(\.header.key)).count
        let wait = settings.batchWaitSeconds
        let crowded = core.activeSequences >= 2 * core.assignment.stageCount
        if wait > 0, crowded, ready < min(settings.maxBatchSteps, core.activeSequences) {
            Task {
                try? await Task.sleep(for: .seconds(wait))
                events.yield(.formBatch)
            }
        } else {
            events.yield(.formBatch)
        }
    }

    private func startBatchIfIdle() {
        guard !computing, var core, let events else { return }
        let batch = core.nextBatch()
        self.core = core
        guard let version = batch.first?.header.planVersion, let executor = executors[version] ?? self.executor else { return }
        computing = true
        let readsInputs = executor.readsInputs
        let inputs = batch.map { step in
            ExecutorStep(
                cache: step.cache, kind: step.header.kind, position: step.header.position, tokenCount: step.header.tokenCount,
                readyAt: step.receivedAt,
                input: !readsInputs
                    ? .tokens([])
                    : step.header.dtype == .i32
                        ? .tokens(StepBody.decodeTokens(step.body)) : .activations(StepBody.decodeActivations(step.body)),
                sampling: step.header.sampling)
        }
        let slowdown = settings.slowdown
        let threads = Double(max(1, settings.threads))
        let measuresCPU = settings.executor == .real
        computeThread.submit {
            let start = Clock.monotonicSeconds()
            let cpuStart = Clock.processCPUSeconds()
            let results: Result<[ExecutorResult], InferenceError>
            do {
                results = .success(try executor.run(inputs))
            } catch let error as InferenceError {
                results = .failure(error)
            } catch {
                results = .failure(InferenceError(code: "internal", message: "\(error)"))
            }
            var elapsed = Clock.monotonicSeconds() - start
            // A profile executor holds (sleeps) for its emulated time: that hold is its compute.
            var compute = measuresCPU ? min(elapsed, (Clock.processCPUSeconds() - cpuStart) / threads) : elapsed
            if slowdown > 1 {
                // Stretch the computation without changing what the node advertises.
                let extra = elapsed * (slowdown - 1)
                sleepThread(seconds: extra)
                elapsed += extra
                compute *= slowdown
            }
            events.yield(.batchDone(BatchOutcome(
                steps: batch, results: results, busySeconds: elapsed, computeSeconds: compute, finishedAt: Clock.monotonicSeconds())))
        }
    }

    private func finishBatch(_ outcome: BatchOutcome) async {
        computing = false
        guard var core else { return }
        busyInInterval += outcome.busySeconds
        let totalTokens = max(1, outcome.steps.reduce(0) { $0 + $1.header.tokenCount })
        switch outcome.results {
        case .failure(let error):
            logger.error("batch of \(outcome.steps.count) failed: \(error)")
            core.batchFailed(outcome.steps)
            for step in outcome.steps {
                apply(.refuse(
                    deliveryTag: step.deliveryTag, schedulerQueue: step.header.scheduler,
                    error: StepErrorEvent(key: step.header.key, attempt: step.header.attempt, node: settings.nodeID, code: .internal, message: error.description)))
            }
        case .success(let results):
            // Busy time in the emulated device's seconds, so a time-scaled node still reads speed 1.
            speed.record(predictedSeconds: predictedSeconds(outcome.steps), busySeconds: settings.timeScale.emulatedSeconds(wall: outcome.busySeconds))
            computeSpeed.record(
                predictedSeconds: predictedSeconds(outcome.steps),
                computeSeconds: settings.timeScale.emulatedSeconds(wall: outcome.computeSeconds), at: outcome.finishedAt)
            tokensInInterval += totalTokens
            batchMeter.record(predictedSeconds: predictedSeconds(outcome.steps), aloneSeconds: aloneSeconds(outcome.steps), steps: outcome.steps.count)
            batchesInInterval.record(steps: outcome.steps.count, tokens: totalTokens, computeSeconds: outcome.busySeconds)
            for (step, result) in zip(outcome.steps, results) {
                let share = outcome.busySeconds * Double(step.header.tokenCount) / Double(totalTokens)
                let delivery = deliveries.removeValue(forKey: step.deliveryTag)
                let sampled: (Int32, Double)? = if case .sampled(let token, let logprob) = result { (token, logprob) } else { nil }
                let output = core.completed(step, sampledToken: sampled?.0, logprob: sampled?.1, computeSeconds: share, now: outcome.finishedAt)
                switch output {
                case .forward(let queue, let header):
                    let body: [UInt8]
                    switch result {
                    case .activations(let values): body = StepBody.encode(activations: values)
                    case .encodedActivations(let bytes): body = bytes
                    case .sampled:
                        delivery?.ack()
                        continue
                    }
                    let message = AMQPMessage(
                        body: body, properties: AMQPProperties(contentType: Names.ContentType.step, headers: header.amqpHeaders))
                    publishThenAck(message, routingKey: queue, delivery: delivery, through: settings.link)
                case .sampled(let schedulerQueue, let event):
                    let message = AMQPMessage(body: encodeMessage(event), properties: AMQPProperties(contentType: Names.ContentType.json))
                    publishThenAck(message, routingKey: schedulerQueue, delivery: delivery, through: settings.returnLink)
                case nil:
                    delivery?.ack()
                }
            }
        }
        self.core = core
    }

    /// Roofline seconds of a batch on this node's advertised device (docs/design.md §5, §7): what the
    /// measured speed compares the busy time with.
    private func predictedSeconds(_ batch: [QueuedStep]) -> Double {
        guard let costs, let version = batch.first?.header.planVersion, let plan = plans[version] ?? plan, let stage = plan.partition.stages.first(where: { $0.tierName == settings.tier }) else { return 0 }
        let cost = costs.stage(firstBlock: stage.firstBlock, lastBlock: stage.lastBlock, holdsEmbedding: stage.holdsEmbedding, holdsHead: stage.holdsHead)
        let shapes = batch.map { step in
            StepShape(kind: step.header.kind == .prefill ? .prefill : .decode, position: step.header.position, tokens: step.header.tokenCount)
        }
        return cost.seconds(batch: shapes, on: settings.nominal)
    }

    /// Roofline seconds of a batch's steps each run alone: with `predictedSeconds`, how much
    /// batching shares this node's time (`BatchMeter`).
    private func aloneSeconds(_ batch: [QueuedStep]) -> Double {
        guard let costs, let version = batch.first?.header.planVersion, let plan = plans[version] ?? plan, let stage = plan.partition.stages.first(where: { $0.tierName == settings.tier }) else { return 0 }
        let cost = costs.stage(firstBlock: stage.firstBlock, lastBlock: stage.lastBlock, holdsEmbedding: stage.holdsEmbedding, holdsHead: stage.holdsHead)
        return batch.reduce(0) { total, step in
            total + cost.seconds(
                StepShape(kind: step.header.kind == .prefill ? .prefill : .decode, position: step.header.position, tokens: step.header.tokenCount),
                on: settings.nominal)
        }
    }

    // MARK: Heartbeats, expiry, draining

    private func tick() async {
        let now = Clock.monotonicSeconds()
        if var core {
            for directive in core.tick(now: now) { apply(directive) }
            self.core = core
        }
        await publishTelemetry(state: draining ? .draining : (core == nil ? .loading : .serving))
    }

    private func beginDrain(reason: String) {
        guard !draining else { return }
        draining = true
        drainDeadline = Clock.monotonicSeconds() + settings.drainSeconds
        core?.drain()
        logger.info("draining (\(reason)): finishing \(core?.activeSequences ?? 0) held requests")
    }

    private func publishTelemetry(state: Telemetry.State) async {
        guard let outbound else { return }
        let now = Clock.monotonicSeconds()
        let interval = max(now - lastBeat, 1e-3)
        lastBeat = now
        let beat = Telemetry(
            node: settings.nodeID, instance: instance, tier: settings.tier, device: settings.device,
            planVersion: plan?.version, state: state,
            nominal: .init(flops: settings.nominal.flops, memoryBandwidthBytesPerSecond: settings.nominal.memoryBandwidthBytesPerSecond, memoryBytes: settings.nominal.memoryBytes),
            kvFreeBytes: core?.kvFreeBytes ?? 0, queueDepth: core?.queued.count ?? 0,
            activeSequences: core?.activeSequences ?? 0, busyFraction: min(1, busyInInterval / interval),
            speed: max(speed.speed, 1e-6), tokensPerSecond: Double(tokensInInterval) / interval,
            modelSHA256: modelSHA256.isEmpty ? nil : modelSHA256, timestamp: Clock.wallSeconds(),
            kvBudgetBytes: core?.settings.kvBudgetBytes, kvPeakBytes: core?.kvPeakBytes, kvReservedBytes: core?.kvReservedBytesByScheduler,
            batches: batchesInInterval, stepSeconds: batchMeter.batches > 0 ? batchMeter.stepSeconds : nil,
            batchShare: batchMeter.batches > 0 ? batchMeter.batchShare : nil,
            computeSpeed: computeSpeed.confidence > 0 ? max(computeSpeed.speed, 1e-6) : nil,
            computeConfidence: computeSpeed.confidence > 0 ? computeSpeed.confidence : nil)
        busyInInterval = 0
        tokensInInterval = 0
        batchesInInterval = Telemetry.Batches()
        let message = AMQPMessage(body: encodeMessage(beat), properties: AMQPProperties(contentType: Names.ContentType.json))
        try? await outbound.publish(
            message, exchange: Names.Exchange.telemetry,
            routingKey: Names.RoutingKey.workerTelemetry(tier: settings.tier, node: settings.nodeID))
    }

    // MARK: Plumbing
}
