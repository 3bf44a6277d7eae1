import Foundation
import Synchronization
import Sweep

// The coordinator process: a ROUTER socket on one thread, driving the `Dispatcher` (queue, expiry,
// re-dispatch) and the `Journal` (batched transactions). Workers connect DEALERs, say hello, get a
// `welcome` with the sweep's config, and pull shards by sending `ready` (load balancing by asking).

/// Tunables of a coordinator run (the defaults are the named protocol constants).
public struct CoordinatorSettings: Sendable {
    public var heartbeatInterval: Double = Dispatcher.heartbeatInterval
    public var liveness: Int = Dispatcher.liveness
    public var maxAttempts: Int = Dispatcher.maxAttempts
    /// Seconds between progress lines (0: none).
    public var progressInterval: Double = 10
    /// CURVE: the coordinator's key pair and its allowlist of worker keys (nil: plaintext).
    public var curve: CurveServer?
    /// Called every `progressInterval` seconds instead of the progress log line (e.g. to draw a
    /// progress bar on a terminal).
    public var onProgress: (@Sendable (ProgressSnapshot) -> Void)?

    /// Results and dispatches are written to the journal at least this often (seconds). A kill
    /// loses at most this much of recorded work, which is then simply evaluated again.
    public static let flushInterval: Double = 0.25
    /// …or as soon as this many results are waiting.
    public static let flushBatch = 1024

    public init() {}
}

/// Where a running sweep stands.
public struct ProgressSnapshot: Sendable, Equatable {
    public var done: Int
    public var total: Int
    public var failed: Int
    /// Items recorded per second by this run.
    public var rate: Double
    /// Seconds left at that rate (nil before the first result).
    public var eta: Double?
    public var liveWorkers: Int

    /// `progress: 1200 / 53248 items (2.3%) · 310.2 items/s · ETA 2:48 · 4 worker(s) · 0 failed`
    public var line: String {
        String(format: "%d / %d items (%.1f%%) · %.1f items/s · ETA %@ · %d worker(s) · %d failed",
               done, total, 100 * Double(done) / Double(max(total, 1)), rate, eta.map(formatDuration) ?? "?", liveWorkers, failed)
    }
}

/// What a coordinator run did.
public struct CoordinatorSummary: Sendable {
    /// True when every item is recorded or failed.
    public var finished: Bool
    public var counts: JournalCounts
    /// Items recorded when the run started (a resumed sweep).
    public var recordedAtStart: Int
    /// Items this run queued (everything not recorded at start).
    public var queuedAtStart: Int
    public var recordedThisRun: Int
    public var duplicatesDropped: Int
    public var lateResults: Int
    public var failedThisRun: Int
    /// Messages refused (bad frames, other plan or version) and shards re-dispatched.
    public var refused: Int
    public var redispatched: Int
    public var workersSeen: Int
    public var seconds: Double
    /// Summed over the results this run accepted.
    public var workerTiming: ShardTiming
    /// Seconds the coordinator thread was busy (decoding, dispatching, journal writes), not waiting.
    public var coordinatorBusy: Double
    /// Maintained as results arrived (Welford), seeded from the journal's earlier results.
    public var table: AggregateTable
}

public final class Coordinator: Sendable {
    public let plan: SweepPlan
    public let journal: Journal
    public let settings: CoordinatorSettings
    private let welcome: Welcome
    private let policy: PeerPolicy
    private let logger: @Sendable (String) -> Void
    private let stopRequested = Atomic<Bool>(false)

    public init(plan: SweepPlan, journal: Journal, settings: CoordinatorSettings = CoordinatorSettings(),
                log: @escaping @Sendable (String) -> Void) throws {
        guard let hash = PlanHash(hex: plan.hash), journal.planHash == plan.hash else {
            throw JournalError.planHashMismatch(path: journal.path, journal: journal.planHash, plan: plan.hash)
        }
        self.plan = plan
        self.journal = journal
        self.settings = settings
        self.policy = PeerPolicy(sweepId: journal.sweepID, planHash: hash)
        self.welcome = Welcome(config: plan.config.canonicalJSON(), artifacts: plan.artifacts,
                               heartbeatInterval: settings.heartbeatInterval, liveness: settings.liveness)
        self.logger = log
    }

    /// Asks a running `run` to stop: it writes what it has, says bye to the workers and returns.
    /// Safe from any thread (e.g. a signal handler's queue).
    public func requestStop() { stopRequested.store(true, ordering: .relaxed) }

    /// Binds `endpoint` (e.g. `tcp://127.0.0.1:5555`, or `:*` for any free port), calls `onBound`
    /// with the endpoint actually bound, and runs until every item is recorded or failed, or
    /// `requestStop` is called. Blocks the calling thread, which owns the socket.
    public func run(bind endpoint: String, assets: AssetServer? = nil, onBound: (String) -> Void = { _ in }) throws -> CoordinatorSummary {
        let context = try ZMQContext()
        // The ZAP handler must be bound before a CURVE socket accepts connections.
        let zap = try settings.curve.map { try ZAPHandler(context: context, server: $0, log: logger) }
        defer { zap?.stop() }
        let socket = try ZMQSocket(context, .router)
        try socket.setMaxMessageSize(WireProtocol.maxMessageSize)
        if let curve = settings.curve { try curve.apply(to: socket) }
        // Failed handshakes (a plaintext worker, another mechanism) are logged from a monitor.
        try socket.monitor("inproc://adaptermix-coordinator-monitor", events: MonitorEvent.handshakeFailures)
        let monitor = try MonitorLogger(context: context, endpoint: "inproc://adaptermix-coordinator-monitor", log: logger)
        defer { monitor.stop() }
        try socket.bind(endpoint)
        let bound = try socket.lastEndpoint()
        onBound(bound)
        var loop = try Loop(coordinator: self, socket: socket, endpoint: bound, assets: assets)
        let summary = try loop.run()
        // Give the byes a moment to leave before the socket closes.
        try? socket.setLinger(500)
        socket.close()
        return summary
    }

    fileprivate func log(_ line: String) { logger(line) }
    fileprivate var isStopRequested: Bool { stopRequested.load(ordering: .relaxed) }
    fileprivate var welcomeMessage: WireMessage { policy.message(.welcome(welcome)) }
    fileprivate var peerPolicy: PeerPolicy { policy }
}

/// The socket loop's state. Lives on the coordinator thread only.
private struct Loop {
    let coordinator: Coordinator
    let socket: ZMQSocket
    let dispatcher: Dispatcher
    let items: [String: WorkItem]
    let started: Double
    let endpoint: String
    let assets: AssetServer?
    let startedWall = Date().timeIntervalSince1970
    var lastNote = -Double.infinity
    var aggregator = IncrementalAggregator()

    /// Peer hex id → its routing identity and name.
    var peers: [String: (identity: Data, name: String)] = [:]
    var names: Set<String> = []
    /// Last time a `welcome` was sent unasked to a peer the dispatcher did not know.
    var rewelcomed: [String: Double] = [:]

    var running: [String] = []
    var results: [ItemResult] = []
    var failed: [(key: String, reason: String)] = []
    var lastFlush: Double
    var nextHeartbeat: Double
    var nextProgress: Double
    var heartbeatSeq: UInt64 = 0

    let recordedAtStart: Int
    let queuedAtStart: Int
    var recordedThisRun = 0
    var duplicates = 0
    var late = 0
    var failedThisRun = 0
    var refused = 0
    var redispatched = 0
    var timing = ShardTiming()
    var busy = 0.0

    init(coordinator: Coordinator, socket: ZMQSocket, endpoint: String, assets: AssetServer?) throws {
        self.coordinator = coordinator
        self.socket = socket
        self.endpoint = endpoint
        self.assets = assets
        let plan = coordinator.plan
        let journal = coordinator.journal
        let todo = try journal.unrecordedKeys()
        let earlier = try journal.results()
        for r in earlier { aggregator.add(r) }
        var items: [String: WorkItem] = [:]
        items.reserveCapacity(plan.itemCount)
        for item in plan.allItems() { items[item.key] = item }
        self.items = items
        let settings = coordinator.settings
        dispatcher = Dispatcher(shards: plan.shards(), pendingKeys: todo, heartbeatInterval: settings.heartbeatInterval,
                                liveness: settings.liveness, maxAttempts: settings.maxAttempts, now: monotonicSeconds,
                                log: { coordinator.log($0) })
        recordedAtStart = earlier.count
        queuedAtStart = todo.count
        started = monotonicSeconds()
        lastFlush = started
        nextHeartbeat = started + settings.heartbeatInterval
        nextProgress = started + (settings.progressInterval > 0 ? settings.progressInterval : .infinity)
    }

    mutating func run() throws -> CoordinatorSummary {
        let total = coordinator.plan.itemCount
        coordinator.log("sweep \(coordinator.journal.sweepID) · plan \(coordinator.plan.hash.prefix(16)) · \(total) items: \(recordedAtStart) recorded, \(queuedAtStart) to do")
        while !dispatcher.isFinished && !coordinator.isStopRequested {
            let now = monotonicSeconds()
            let wakeAt = min(nextHeartbeat, results.isEmpty && running.isEmpty ? .infinity : lastFlush + CoordinatorSettings.flushInterval, nextProgress)
            let waitFor = max(0, min(wakeAt - now, 0.25))
            if let frames = try socket.receive(timeout: waitFor) {
                let t0 = monotonicSeconds()
                handle(frames)
                // Drain what else is waiting before doing timed work.
                var drained = 0
                while drained < 2000, let more = try socket.receive(timeout: 0) {
                    handle(more)
                    drained += 1
                }
                busy += monotonicSeconds() - t0
            }
            let t1 = monotonicSeconds()
            if t1 >= nextHeartbeat { heartbeatRound(t1) }
            if results.count >= CoordinatorSettings.flushBatch || t1 - lastFlush >= CoordinatorSettings.flushInterval { try flush() }
            if t1 >= nextProgress { progress(t1) }
            busy += monotonicSeconds() - t1
        }
        try flush()
        let finished = dispatcher.isFinished
        try? coordinator.journal.noteCoordinator(pid: Int(getpid()), endpoint: endpoint, startedAt: startedWall,
                                                 liveWorkers: dispatcher.liveWorkers.count, finished: finished)
        let bye = Bye(reason: finished ? "sweep finished" : "coordinator stopping (run it again with the same journal to resume)",
                      finished: finished)
        for (_, peer) in peers { send(peer.identity, .bye(bye)) }
        let seconds = monotonicSeconds() - started
        let counts = try coordinator.journal.counts()
        coordinator.log(finished
            ? "sweep complete: \(counts.done) recorded, \(counts.failed) failed, in \(String(format: "%.1f", seconds)) s"
            : "stopped with \(counts.total - counts.done - counts.failed) items to do; resume with the same journal")
        return CoordinatorSummary(finished: finished, counts: counts, recordedAtStart: recordedAtStart, queuedAtStart: queuedAtStart,
                                  recordedThisRun: recordedThisRun, duplicatesDropped: duplicates, lateResults: late,
                                  failedThisRun: failedThisRun, refused: refused, redispatched: redispatched,
                                  workersSeen: names.count, seconds: seconds, workerTiming: timing, coordinatorBusy: busy,
                                  table: aggregator.table)
    }

    // MARK: messages

    mutating func handle(_ frames: [Data]) {
        switch coordinator.peerPolicy.admit(frames) {
        case .refused(let identity, let refusal, _):
            refused += 1
            let who = identity.map(hexID) ?? "(no identity)"
            coordinator.log("refused a message from \(who)\(peers[who].map { " (\($0.name))" } ?? ""): \(refusal.code.rawValue): \(refusal.reason)")
            if let identity { send(identity, .refuse(refusal)) }
            // A known worker that speaks another plan is not one of ours any more.
            if refusal.code != .malformed, peers[who] != nil { workerLeft(who, reason: "worker \(who) refused: \(refusal.reason)") }
        case .accepted(let identity, let message):
            let id = hexID(identity)
            switch message.payload {
            case .hello(let hello):
                let name = "\(hello.worker) (pid \(hello.pid), \(hello.threads) thread\(hello.threads == 1 ? "" : "s"))"
                if peers[id] == nil { coordinator.log("worker \(name) joined") }
                // A hello from a worker that holds shards means it reconnected: work sent to its old
                // connection may be lost with it, so its shards go back to the queue (a result it
                // still sends for them is taken as a late result).
                if dispatcher.knows(id) {
                    workerLeft(id, reason: "worker \(name) reconnected; its shards in flight go back to the queue")
                }
                peers[id] = (identity, name)
                names.insert(hello.worker)
                send(identity, coordinator.welcomeMessage.payload)
            case .ready(let ready):
                if peers[id] == nil { peers[id] = (identity, id) }
                for _ in 0..<min(ready.credit, 64) {
                    guard let shard = dispatcher.workerReady(id) else { break }
                    sendWork(shard, to: id)
                }
            case .result(let result):
                if peers[id] == nil { peers[id] = (identity, id) }
                accept(result, from: id)
            case .heartbeat:
                if !dispatcher.heartbeat(id) {
                    // Not in the table: presumed dead earlier, or it talked to a coordinator before
                    // this one. A fresh welcome makes it ask for work again.
                    let now = monotonicSeconds()
                    if now - (rewelcomed[id] ?? -.infinity) >= coordinator.settings.heartbeatInterval {
                        rewelcomed[id] = now
                        if peers[id] == nil { peers[id] = (identity, id) }
                        send(identity, coordinator.welcomeMessage.payload)
                    }
                }
            case .bye(let bye):
                workerLeft(id, reason: "worker \(peers[id]?.name ?? id) left: \(bye.reason)")
                peers[id] = nil
            case .refuse(let refusal):
                workerLeft(id, reason: "worker \(peers[id]?.name ?? id) quit: \(refusal.reason)")
                peers[id] = nil
            case .fetch(let request):
                if dispatcher.knows(id) { _ = dispatcher.heartbeat(id) }
                let chunk = assets?.chunk(request)
                    ?? BlobChunk(sha256: request.sha256, offset: request.offset, total: 0, data: Data(),
                                 error: "this coordinator serves no artifacts (it runs the no-op evaluator)")
                if let error = chunk.error, request.offset == 0 {
                    coordinator.log("cannot send artifact \(request.sha256.prefix(16)) to \(peers[id]?.name ?? id): \(error)")
                }
                send(identity, .blob(chunk))
            case .work, .welcome, .blob:
                coordinator.log("ignored a \(message.kind) message from \(id): only a coordinator sends those")
            }
        }
    }

    mutating func accept(_ result: ShardResult, from id: String) {
        let outcome = dispatcher.result(id, result)
        guard case .accepted(let record, let dups, _, let retried, let failedItems, let isLate) = outcome else { return }
        if let t = result.timing { timing = timing + t }
        if isLate { late += 1 }
        duplicates += dups.count
        let worker = peers[id]?.name ?? id
        for r in record {
            guard let bits = CorrectnessBits(count: r.n, bytes: r.bits) else { continue }
            results.append(ItemResult(key: r.key, n: r.n, correct: r.correct, bits: bits, meanFSD: r.meanFSD,
                                      weightsChangingDirection: r.weightsChangingDirection, worker: worker,
                                      attempt: result.attempt, duration: r.seconds))
        }
        if !retried.isEmpty {
            let reasons = Set(result.items.compactMap(\.error))
            coordinator.log("shard \(result.shard) attempt \(result.attempt) from \(worker): \(retried.count) item(s) to retry\(reasons.isEmpty ? "" : ": \(reasons.sorted().joined(separator: "; "))")")
            redispatched += 1
        }
        noteFailed(failedItems)
        for (worker, shard) in dispatcher.dispatchWaiting() { sendWork(shard, to: worker) }
    }

    mutating func noteFailed(_ items: [FailedItem]) {
        for f in items {
            failed.append((f.key, "failed after \(f.attempts) attempt(s): \(f.reason)"))
            failedThisRun += 1
        }
    }

    mutating func workerLeft(_ id: String, reason: String) {
        if let gone = dispatcher.workerGone(id, reason: reason) {
            redispatched += gone.requeued.count
            noteFailed(gone.failed)
            for (worker, shard) in dispatcher.dispatchWaiting() { sendWork(shard, to: worker) }
        }
    }

    mutating func sendWork(_ shard: WorkShard, to id: String) {
        guard let peer = peers[id], send(peer.identity, .work(shard)) else {
            workerLeft(id, reason: "cannot send shard \(shard.shard) to \(peers[id]?.name ?? id): not connected")
            return
        }
        running.append(contentsOf: shard.items.map(\.key))
    }

    @discardableResult
    func send(_ identity: Data, _ payload: Payload) -> Bool {
        do {
            let frames = try coordinator.peerPolicy.message(payload).encode()
            return try socket.send([identity] + frames, timeout: 0)
        } catch {
            return false
        }
    }

    // MARK: timed work

    mutating func heartbeatRound(_ now: Double) {
        heartbeatSeq += 1
        for id in dispatcher.liveWorkers {
            if let peer = peers[id] { send(peer.identity, .heartbeat(sequence: heartbeatSeq)) }
        }
        for gone in dispatcher.tick() {
            redispatched += gone.requeued.count
            noteFailed(gone.failed)
        }
        for (worker, shard) in dispatcher.dispatchWaiting() { sendWork(shard, to: worker) }
        nextHeartbeat = now + coordinator.settings.heartbeatInterval
    }

    mutating func flush() throws {
        lastFlush = monotonicSeconds()
        if lastFlush - lastNote >= 2 {
            lastNote = lastFlush
            try coordinator.journal.noteCoordinator(pid: Int(getpid()), endpoint: endpoint, startedAt: startedWall,
                                                    liveWorkers: dispatcher.liveWorkers.count, finished: false)
        }
        guard !running.isEmpty || !results.isEmpty || !failed.isEmpty else { return }
        let outcome = try coordinator.journal.commit(running: running, results: results, failed: failed)
        let byKey = Dictionary(results.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
        for key in outcome.newlyRecorded {
            if let item = items[key], let r = byKey[key] { aggregator.add(r, for: item) }
        }
        recordedThisRun += outcome.recorded
        duplicates += outcome.duplicates
        running.removeAll(keepingCapacity: true)
        results.removeAll(keepingCapacity: true)
        failed.removeAll(keepingCapacity: true)
    }

    mutating func progress(_ now: Double) {
        let total = coordinator.plan.itemCount
        let done = recordedAtStart + recordedThisRun
        let elapsed = now - started
        let rate = Double(recordedThisRun) / max(elapsed, 1e-9)
        let left = total - done - dispatcher.failedCount
        let snapshot = ProgressSnapshot(done: done, total: total, failed: dispatcher.failedCount, rate: rate,
                                        eta: rate > 0 ? Double(left) / rate : nil, liveWorkers: dispatcher.liveWorkers.count)
        if let show = coordinator.settings.onProgress {
            show(snapshot)
        } else {
            coordinator.log("progress: " + snapshot.line)
        }
        nextProgress = now + coordinator.settings.progressInterval
    }
}

/// Logs a socket monitor's failed-handshake events from its own thread.
final class MonitorLogger: Sendable {
    private let stopped = StopFlag()
    private let done = DispatchSemaphore(value: 0)

    init(context: ZMQContext, endpoint: String, log: @escaping @Sendable (String) -> Void) throws {
        let pair = try ZMQSocket(context, .pair)
        try pair.connect(endpoint)
        let box = UncheckedSocket(pair)
        let stopped = self.stopped, done = self.done
        let thread = Thread {
            let socket = box.socket
            defer { socket.close(); done.signal() }
            while !stopped.isSet {
                guard let frames = try? socket.receive(timeout: 0.2), let event = MonitorEvent(frames),
                      let why = event.explanation(server: true) else { continue }
                log("a connection to \(event.endpoint) failed its handshake: \(why)")
            }
        }
        thread.name = "adaptermix-monitor"
        thread.start()
    }

    func stop() {
        stopped.set()
        done.wait()
    }
}

/// Seconds on a monotonic clock.
@Sendable func monotonicSeconds() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

/// `1:02:03`, `4:05`.
public func formatDuration(_ s: Double) -> String {
    guard s.isFinite, s >= 0 else { return "?" }
    let t = Int(s.rounded())
    return t >= 3600 ? String(format: "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60) : String(format: "%d:%02d", t / 60, t % 60)
}

/// A routing identity as text: itself when it is printable ASCII (workers set readable ones),
/// otherwise `0x` and hex (libzmq's generated identities).
func hexID(_ identity: Data) -> String {
    if !identity.isEmpty, identity.count <= 255, identity.allSatisfy({ $0 >= 0x21 && $0 < 0x7F }) {
        return String(decoding: identity, as: UTF8.self)
    }
    return "0x" + identity.map { String(format: "%02x", $0) }.joined()
}
