import CZeroMQ
import Foundation
import Synchronization
import Sweep

// A worker process: a DEALER socket on the calling thread (hello, ready, results, heartbeats,
// reconnects) and one evaluation thread that owns the evaluator. The socket thread never blocks on
// evaluation, so heartbeats keep flowing while a shard runs for minutes.

/// Tunables of a worker.
public struct WorkerSettings: Sendable {
    /// Shown in the coordinator's log (default host:pid).
    public var name: String
    /// Threads the evaluator uses (reported in hello).
    public var threads: Int
    /// Shards asked for beyond the one being evaluated, so the next one is already here when a
    /// shard ends (hides the round trip; 0 = strictly one at a time).
    public var prefetch: Int = 1
    /// When set, hello names this plan (and sweep id) and a coordinator running another sweep
    /// refuses the worker; otherwise the worker joins whatever sweep the coordinator runs.
    public var planHash: PlanHash?
    public var sweepId: String?
    /// Reconnect back-off: starts here and doubles up to `maxBackoff` seconds.
    public var initialBackoff: Double = 1
    public var maxBackoff: Double = 30
    /// Give up when no coordinator has answered for this long (seconds).
    public var giveUpAfter: Double = 600
    /// Testing aid: sleep this long after each shard (makes kill tests hit mid-sweep). Not counted as work.
    public var delayPerShard: Double = 0
    /// CURVE: this worker's key pair and the coordinator's public key (nil: plaintext).
    public var curve: CurveClient?
    /// Heartbeat settings used until the coordinator's welcome gives its own.
    public var heartbeatInterval: Double = Dispatcher.heartbeatInterval
    public var liveness: Int = Dispatcher.liveness

    public init(name: String, threads: Int) {
        self.name = name
        self.threads = max(1, threads)
    }
}

/// How a worker's run ended.
public enum WorkerExit: Equatable, Sendable {
    /// The coordinator said the sweep is complete.
    case finished(String)
    /// The coordinator is stopping with work left, or this worker was asked to stop.
    case stopped(String)
    /// The coordinator refused this worker (another plan, another protocol version…).
    case refused(Refusal)
    /// No coordinator answered for `giveUpAfter` seconds.
    case gaveUp(String)
    /// The worker cannot evaluate this sweep (e.g. its files differ from the coordinator's).
    case failed(String)
}

/// Builds the evaluator for a sweep from the coordinator's welcome (on the evaluation thread); the
/// fetcher brings artifacts the worker lacks over the sweep's connection.
public typealias EvaluatorFactory = @Sendable (Welcome, BlobFetcher) throws -> ShardEvaluator

public final class Worker: Sendable {
    public let endpoint: String
    public let settings: WorkerSettings
    private let factory: EvaluatorFactory
    private let logger: @Sendable (String) -> Void
    private let stopRequested = Atomic<Bool>(false)

    public init(endpoint: String, settings: WorkerSettings, log: @escaping @Sendable (String) -> Void,
                evaluator: @escaping EvaluatorFactory) {
        self.endpoint = endpoint
        self.settings = settings
        self.factory = evaluator
        self.logger = log
    }

    /// Asks `run` to say bye and return (safe from any thread).
    public func requestStop() { stopRequested.store(true, ordering: .relaxed) }

    /// Connects and works until the sweep ends, the coordinator refuses us, or we give up.
    public func run() throws -> WorkerExit {
        let box = EvaluationBox()
        let factory = self.factory
        let delay = settings.delayPerShard
        let thread = Thread { box.serve(factory: factory, delay: delay) }
        thread.name = "adaptermix-evaluator"
        thread.start()
        defer { box.shutdown() }
        var session = try Session(worker: self, box: box)
        return try session.run()
    }

    fileprivate func log(_ line: String) { logger(line) }
    fileprivate var isStopRequested: Bool { stopRequested.load(ordering: .relaxed) }
}

/// The hand-over between the socket thread and the evaluation thread.
private final class EvaluationBox: @unchecked Sendable {  // every field is guarded by `condition`
    enum SetupState { case none, requested(Welcome), ready, failed(String) }

    private let condition = NSCondition()
    /// A pipe the evaluation thread writes a byte to whenever the socket thread has news (a result,
    /// the end of set-up), so the socket thread wakes at once instead of at its next poll timeout.
    let wakeRead: Int32
    private let wakeWrite: Int32
    private var setup: SetupState = .none
    private var inbox: [WorkShard] = []
    private var outbox: [ShardResult] = []
    private var busy = false
    private var closed = false

    init() {
        var fds: [Int32] = [-1, -1]
        if pipe(&fds) == 0 {
            _ = fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK)
            _ = fcntl(fds[1], F_SETFL, fcntl(fds[1], F_GETFL) | O_NONBLOCK)
        }
        wakeRead = fds[0]
        wakeWrite = fds[1]
    }

    deinit {
        if wakeRead >= 0 { close(wakeRead) }
        if wakeWrite >= 0 { close(wakeWrite) }
    }

    private func wake() {
        var byte: UInt8 = 1
        if wakeWrite >= 0 { _ = write(wakeWrite, &byte, 1) }
    }

    /// Empties the wake-up pipe (socket thread).
    func drainWakeups() {
        var buffer = [UInt8](repeating: 0, count: 64)
        while wakeRead >= 0, read(wakeRead, &buffer, buffer.count) > 0 {}
    }

    // MARK: artifact transfers (evaluation thread asks, socket thread moves the bytes)

    private var fetchRequests: [(sha: String, destination: URL)] = []
    private var fetchResults: [String: String?] = [:]  // sha → nil (done) or the error

    /// Blocks the evaluation thread until the socket thread has written the artifact to `destination`.
    func fetch(sha256: String, to destination: URL) throws {
        condition.lock()
        fetchResults.removeValue(forKey: sha256)
        fetchRequests.append((sha256, destination))
        condition.unlock()
        wake()
        condition.lock(); defer { condition.unlock() }
        while fetchResults[sha256] == nil && !closed { condition.wait() }
        guard let outcome = fetchResults.removeValue(forKey: sha256) else {
            throw SecurityError("the worker stopped while fetching \(sha256)")
        }
        if let error = outcome { throw SecurityError(error) }
    }

    func takeFetchRequests() -> [(sha: String, destination: URL)] {
        condition.lock(); defer { condition.unlock() }
        let out = fetchRequests
        fetchRequests.removeAll()
        return out
    }

    func finishFetch(_ sha256: String, error: String?) {
        condition.lock(); defer { condition.unlock() }
        fetchResults[sha256] = .some(error)
        condition.broadcast()
    }

    func requestSetup(_ welcome: Welcome) {
        condition.lock(); defer { condition.unlock() }
        if case .none = setup { setup = .requested(welcome); condition.broadcast() }
    }

    var setupState: SetupState {
        condition.lock(); defer { condition.unlock() }
        return setup
    }

    func push(_ shard: WorkShard) {
        condition.lock(); defer { condition.unlock() }
        inbox.append(shard)
        condition.broadcast()
    }

    /// Shards queued or being evaluated.
    var held: Int {
        condition.lock(); defer { condition.unlock() }
        return inbox.count + (busy ? 1 : 0)
    }

    func takeResults() -> [ShardResult] {
        condition.lock(); defer { condition.unlock() }
        let out = outbox
        outbox.removeAll()
        return out
    }

    func shutdown() {
        condition.lock(); defer { condition.unlock() }
        closed = true
        condition.broadcast()
    }

    /// The evaluation thread's loop.
    func serve(factory: EvaluatorFactory, delay: Double) {
        let fetcher = BoxFetcher(box: self)
        var evaluator: ShardEvaluator?
        while true {
            condition.lock()
            while !closed, inbox.isEmpty, !({ if case .requested = setup { return true } else { return false } }()) {
                condition.wait()
            }
            if closed { condition.unlock(); return }
            if case .requested(let welcome) = setup {
                condition.unlock()
                let state: SetupState
                do {
                    evaluator = try factory(welcome, fetcher)
                    state = .ready
                } catch {
                    state = .failed("\(error)")
                }
                condition.lock()
                setup = state
                condition.unlock()
                wake()
                continue
            }
            let shard = inbox.removeFirst()
            busy = true
            condition.unlock()

            let result: ShardResult
            if let evaluator {
                let (outcomes, timing) = evaluator.evaluate(target: shard.target, items: shard.items)
                result = ShardResult(shard: shard.shard, attempt: shard.attempt, items: outcomes.map(ItemReport.init), timing: timing)
            } else {
                result = ShardResult(shard: shard.shard, attempt: shard.attempt,
                                     items: shard.items.map { ItemReport(key: $0.key, n: 0, correct: 0, bits: Data(), seconds: 0,
                                                                         error: "worker has no evaluator yet") })
            }
            if delay > 0 { Thread.sleep(forTimeInterval: delay) }
            condition.lock()
            busy = false
            outbox.append(result)
            condition.unlock()
            wake()
        }
    }
}

/// Artifact fetches through the worker's connection.
private struct BoxFetcher: BlobFetcher {
    let box: EvaluationBox
    func fetch(sha256: String, to destination: URL) throws { try box.fetch(sha256: sha256, to: destination) }
}

/// One artifact being received.
private final class Transfer {
    let sha: String
    let destination: URL
    let handle: FileHandle
    var received = 0
    var requested = 0
    var total: Int?
    init(sha: String, destination: URL, handle: FileHandle) {
        self.sha = sha
        self.destination = destination
        self.handle = handle
    }
}

/// The socket side of a worker run.
private struct Session {
    let worker: Worker
    let box: EvaluationBox
    let identity: Data
    let context: ZMQContext
    var socket: ZMQSocket?
    /// Reads the socket monitor's events (failed handshakes end the run with a clear error).
    var monitor: ZMQSocket?
    var monitorCount = 0
    /// Connections (TCP established) whose CURVE handshake never completed, since the last one that
    /// did. A coordinator that is simply down does not count: nothing connects.
    var attemptsWithoutHandshake = 0
    /// Whether the current socket got a TCP connection / a completed handshake.
    var connectedThisAttempt = false
    var handshakeThisAttempt = false

    var sweepId: String?
    var planHash: PlanHash?
    var interval: Double
    var liveness: Int
    var welcomed = false
    /// Credits sent and not yet answered with work (reset by every welcome).
    var asked = 0
    /// Last message from the coordinator (reset on reconnect, for the liveness check).
    var lastHeard: Double
    /// Last message from the coordinator (not reset: for giving up).
    var lastContact: Double
    var lastSent = 0.0
    var heartbeatSeq: UInt64 = 0
    var backoff: Double
    var setupReported = false
    /// Artifact transfers in progress, by SHA-256.
    var transfers: [String: Transfer] = [:]
    /// Chunks asked for ahead of the ones received, per transfer.
    static let fetchWindow = 4

    init(worker: Worker, box: EvaluationBox) throws {
        self.worker = worker
        self.box = box
        var random = SystemRandomNumberGenerator()
        let suffix = String(random.next() & 0xFFFF_FFFF, radix: 16)
        let name = worker.settings.name.unicodeScalars.map { $0.isASCII && $0.value > 0x20 && $0.value < 0x7F ? Character($0) : "_" }
        identity = Data((String(name.prefix(200)) + "#" + suffix).utf8)
        context = try ZMQContext()
        sweepId = worker.settings.sweepId
        planHash = worker.settings.planHash
        interval = worker.settings.heartbeatInterval
        liveness = worker.settings.liveness
        lastHeard = monotonicSeconds()
        lastContact = lastHeard
        backoff = worker.settings.initialBackoff
    }

    mutating func connect() throws {
        socket?.close()
        monitor?.close()
        let s = try ZMQSocket(context, .dealer)
        try s.setOption(ZMQ_ROUTING_ID_OPTION, identity)
        try s.setMaxMessageSize(WireProtocol.maxMessageSize)
        if let curve = worker.settings.curve { try curve.apply(to: s) }
        monitorCount += 1
        let monitorEndpoint = "inproc://adaptermix-worker-monitor-\(monitorCount)"
        try s.monitor(monitorEndpoint, events: MonitorEvent.handshakeFailures | ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_CONNECTED)
        let m = try ZMQSocket(context, .pair)
        try m.connect(monitorEndpoint)
        monitor = m
        if connectedThisAttempt && !handshakeThisAttempt { attemptsWithoutHandshake += 1 }
        connectedThisAttempt = false
        handshakeThisAttempt = false
        try s.connect(worker.endpoint)
        socket = s
        welcomed = false
        asked = 0
        let hello = Hello(worker: worker.settings.name, pid: Int(getpid()), threads: worker.settings.threads)
        send(.hello(hello))
    }

    mutating func run() throws -> WorkerExit {
        defer {
            socket?.close()
            monitor?.close()
        }
        try connect()
        while true {
            if worker.isStopRequested {
                send(.bye(Bye(reason: "worker stopping")))
                return .stopped("asked to stop")
            }
            if let socket, let monitor {
                let ready = try ZMQSocket.poll([socket, monitor], fds: box.wakeRead >= 0 ? [box.wakeRead] : [], timeout: 0.05)
                if ready.count > 2 && ready[2] { box.drainWakeups() }
            }
            while let frames = try monitor?.receive(timeout: 0) {
                guard let event = MonitorEvent(frames) else { continue }
                if event.event == ZMQ_EVENT_CONNECTED {
                    connectedThisAttempt = true
                    continue
                }
                if event.event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED {
                    handshakeThisAttempt = true
                    attemptsWithoutHandshake = 0
                    continue
                }
                let why = event.explanation() ?? "handshake event \(event.event)"
                if event.event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH {
                    return .failed("the coordinator at \(worker.endpoint) refused this worker's CURVE key (\(why)): add its public key \(worker.settings.curve?.keys.publicKey ?? "(none)") to the coordinator's authorized/ folder")
                }
                if event.event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL {
                    return .failed("cannot talk to the coordinator at \(worker.endpoint): \(why) — \(worker.settings.curve == nil ? "the coordinator requires CURVE: start the worker with --curve-key and --server-key" : "the coordinator does not use CURVE: drop --curve-key and --server-key")")
                }
                worker.log("handshake with \(worker.endpoint) failed: \(why)")
            }
            while let frames = try socket?.receive(timeout: 0) {
                if let exit = handle(frames) { return exit }
            }
            let now = monotonicSeconds()
            // Evaluator set-up outcome.
            if !setupReported, case .failed(let why) = box.setupState {
                setupReported = true
                send(.refuse(Refusal(code: .other, reason: "worker \(worker.settings.name) cannot evaluate this sweep: \(why)")))
                return .failed(why)
            }
            // Artifact transfers the evaluation thread asked for.
            for request in box.takeFetchRequests() { startTransfer(request.sha, request.destination) }
            // Results, then more work.
            for result in box.takeResults() { send(.result(result)) }
            if welcomed, case .ready = box.setupState {
                let free = 1 + worker.settings.prefetch - box.held - asked
                if free > 0 {
                    send(.ready(Ready(credit: free)))
                    asked += free
                }
            }
            if welcomed, now - lastSent >= interval {
                heartbeatSeq += 1
                send(.heartbeat(sequence: heartbeatSeq))
            }
            // Liveness: the coordinator has gone quiet.
            if now - lastHeard > interval * Double(liveness) {
                if now - lastContact > worker.settings.giveUpAfter {
                    return .gaveUp("no answer from the coordinator at \(worker.endpoint) for \(Int(worker.settings.giveUpAfter)) s")
                }
                // Never wait past the give-up deadline.
                let wait = max(0, min(backoff, lastContact + worker.settings.giveUpAfter - now))
                worker.log("coordinator at \(worker.endpoint) silent for \(String(format: "%.1f", now - lastHeard)) s; reconnecting in \(String(format: "%.0f", wait)) s")
                let until = monotonicSeconds() + wait
                while monotonicSeconds() < until && !worker.isStopRequested { Thread.sleep(forTimeInterval: 0.05) }
                backoff = min(backoff * 2, worker.settings.maxBackoff)
                if connectedThisAttempt && !handshakeThisAttempt { attemptsWithoutHandshake += 1; connectedThisAttempt = false }
                if worker.settings.curve != nil && attemptsWithoutHandshake >= 3 {
                    return .failed("no CURVE handshake with the coordinator at \(worker.endpoint) completed in \(attemptsWithoutHandshake) attempts: check --server-key (the coordinator's coordinator.pub) and that it runs with --curve")
                }
                try connect()
                // Count the silence from the reconnect, so the next check waits a full liveness period.
                lastHeard = monotonicSeconds()
            }
        }
    }

    /// Handles one message; returns how the run ends, if it does.
    mutating func handle(_ frames: [Data]) -> WorkerExit? {
        let message: WireMessage
        do {
            message = try WireMessage.decode(frames)
        } catch let e as WireError {
            worker.log("ignored a malformed message from the coordinator: \(e)")
            return nil
        } catch {
            return nil
        }
        lastHeard = monotonicSeconds()
        lastContact = lastHeard
        backoff = worker.settings.initialBackoff
        switch message.payload {
        case .refuse(let refusal):
            worker.log("refused by the coordinator (\(refusal.code.rawValue)): \(refusal.reason)")
            return .refused(refusal)
        case .welcome(let welcome):
            if let planHash, planHash != message.planHash {
                let why = "the coordinator at \(worker.endpoint) now runs plan \(message.planHash.hex), not \(planHash.hex)"
                worker.log(why)
                return .failed(why)
            }
            let first = !welcomed && self.planHash == nil
            sweepId = message.sweepId
            planHash = message.planHash
            interval = welcome.heartbeatInterval
            liveness = welcome.liveness
            welcomed = true
            asked = 0
            // Chunks asked of a previous connection may be lost: ask again from what arrived.
            for t in transfers.values {
                t.requested = t.received
                requestChunks(t)
            }
            if first || { if case .none = box.setupState { return true } else { return false } }() {
                worker.log("joined sweep \(message.sweepId) (plan \(message.planHash.hex.prefix(16)))")
            }
            box.requestSetup(welcome)
        case .work(let shard):
            asked = max(0, asked - 1)
            box.push(shard)
        case .heartbeat:
            break
        case .blob(let chunk):
            receive(chunk)
        case .bye(let bye):
            worker.log("coordinator says bye: \(bye.reason)")
            return bye.finished == false ? .stopped(bye.reason) : .finished(bye.reason)
        case .hello, .ready, .result, .fetch:
            worker.log("ignored a \(message.kind) message: only workers send those")
        }
        return nil
    }

    // MARK: artifact transfers

    mutating func startTransfer(_ sha: String, _ destination: URL) {
        let fm = FileManager.default
        try? fm.removeItem(at: destination)
        guard fm.createFile(atPath: destination.path, contents: nil), let handle = FileHandle(forWritingAtPath: destination.path) else {
            box.finishFetch(sha, error: "\(destination.path): cannot write the artifact here")
            return
        }
        let t = Transfer(sha: sha, destination: destination, handle: handle)
        transfers[sha] = t
        worker.log("fetching artifact \(sha.prefix(16)) from the coordinator")
        requestChunks(t)
    }

    mutating func requestChunks(_ t: Transfer) {
        guard welcomed else { return }
        let size = BlobChunk.maxLength
        while t.requested < t.received + Self.fetchWindow * size {
            if let total = t.total, t.requested >= total { break }
            send(.fetch(FetchRequest(sha256: t.sha, offset: t.requested, length: size)))
            t.requested += size
            if t.total == nil { break }  // learn the size from the first chunk before asking further
        }
    }

    mutating func receive(_ chunk: BlobChunk) {
        guard let t = transfers[chunk.sha256] else { return }
        if let error = chunk.error {
            finish(t, error: "the coordinator cannot send artifact \(chunk.sha256): \(error)")
            return
        }
        guard chunk.offset == t.received else { return }  // a duplicate after a reconnect; the next one comes in order
        t.total = chunk.total
        do {
            try t.handle.write(contentsOf: chunk.data)
        } catch {
            finish(t, error: "\(t.destination.path): cannot write (\(error.localizedDescription))")
            return
        }
        t.received += chunk.data.count
        if t.received >= chunk.total {
            finish(t, error: nil)
        } else if chunk.data.isEmpty {
            finish(t, error: "the coordinator sent an empty chunk at \(t.received) of \(chunk.total) bytes")
        } else {
            requestChunks(t)
        }
    }

    mutating func finish(_ t: Transfer, error: String?) {
        try? t.handle.close()
        transfers[t.sha] = nil
        if error == nil { worker.log("fetched artifact \(t.sha.prefix(16)) (\(t.received) bytes)") }
        box.finishFetch(t.sha, error: error)
    }

    mutating func send(_ payload: Payload) {
        guard let socket else { return }
        let message = WireMessage(sweepId: sweepId ?? WireProtocol.anySweep, planHash: planHash ?? .unknown, payload: payload)
        do {
            if try socket.send(message.encode(), timeout: 0) { lastSent = monotonicSeconds() }
        } catch {
            worker.log("send failed: \(error)")
        }
    }
}

/// `ZMQ_ROUTING_ID` (libzmq ≥ 4.2 name of `ZMQ_IDENTITY`).
let ZMQ_ROUTING_ID_OPTION: Int32 = 5
