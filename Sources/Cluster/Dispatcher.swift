import Foundation
import Sweep

// The coordinator's bookkeeping, free of sockets and threads: the queue of pending shards, the
// worker table with expiry and the in-flight assignments. The reliability scheme follows the
// ZeroMQ guide's Paranoid Pirate queue: every message from a worker refreshes its expiry; a
// worker silent for `liveness` heartbeat intervals is presumed dead and its work goes back to
// the front of the queue. The socket loop drives a `Dispatcher` with method calls; tests drive it
// with a fake clock.

/// Workers are keyed by a string the caller derives from the peer (e.g. the ZeroMQ identity in hex).
public typealias WorkerID = String

/// An item given up on: its shard failed `Dispatcher.maxAttempts` times. The caller marks it failed
/// in the journal (`Journal.markFailed(key:reason:)`).
public struct FailedItem: Equatable, Sendable {
    public var key: String
    public var shard: Int
    public var attempts: Int
    public var reason: String
}

/// What `Dispatcher.result` decided about one `ShardResult`.
public enum ResultOutcome: Equatable, Sendable {
    /// The result was taken. `record` holds the item results to store in the journal (first valid
    /// result per item wins); `duplicates` the keys already recorded (dropped); `unknownKeys` keys
    /// not in the shard (dropped); `retried` the keys of items that errored or were missing and went
    /// back to the queue; `failed` the items given up on. `late` is true when the result came from a
    /// superseded attempt (e.g. a worker presumed dead).
    case accepted(record: [ItemReport], duplicates: [String], unknownKeys: [String], retried: [String],
                  failed: [FailedItem], late: Bool)
    /// The result was not taken (unknown shard, not sent to this worker, already answered).
    case ignored(reason: String)

    /// The item results to record (empty when ignored).
    public var toRecord: [ItemReport] {
        if case .accepted(let r, _, _, _, _, _) = self { return r }
        return []
    }
}

/// What `Dispatcher.failure` decided.
public enum FailureOutcome: Equatable, Sendable {
    /// The shard's unfinished items went back to the front of the queue with this attempt number.
    case requeued(attempt: Int)
    /// The shard reached `maxAttempts`; these items are reported failed.
    case failed([FailedItem])
    /// Nothing left to retry: every item of the shard is already recorded or failed.
    case nothingLeft
    /// The report was not about a shard in flight at that worker.
    case ignored(reason: String)
}

/// A worker dropped from the table by `tick()` or `workerGone`, and what became of its shards.
public struct ExpiredWorker: Equatable, Sendable {
    public var worker: WorkerID
    /// Shards put back at the front of the queue (with their new attempt numbers).
    public var requeued: [WorkShard]
    /// Items given up on because their shard had reached `maxAttempts`.
    public var failed: [FailedItem]
}

/// The coordinator's queue, worker table and in-flight assignments. Not thread-safe: one owner
/// (the coordinator's socket loop) calls it.
public final class Dispatcher {
    /// Seconds between heartbeats, each way. Sensible range 0.5…5 s: shorter floods the socket for
    /// no gain, longer delays noticing a dead worker (the guide's Paranoid Pirate uses 1 s).
    public static let heartbeatInterval: Double = 1.0
    /// Heartbeats missed before a worker is presumed dead. Sensible range 3…10: below 3 a brief
    /// stall (GC, swap, a long BLAS call starving the heartbeat thread) kills a healthy worker;
    /// above 10 a dead worker's shard waits long before being re-dispatched.
    public static let liveness: Int = 3
    /// Attempts per shard before its items are reported failed. Sensible range 2…5: one retry
    /// covers a crashed node; more only repeat a deterministic failure (bad input, OOM).
    public static let maxAttempts: Int = 3

    /// A worker is presumed dead this long after its last message.
    public let expiryInterval: Double
    public let maxAttempts: Int

    private let now: () -> Double
    /// Called with a line for every message ignored or worker expired (the caller's logger).
    public var log: (String) -> Void

    /// Pending shards, front first. Re-queued shards are inserted at the front.
    private var queue: [WorkShard] = []
    /// Worker id → time after which it is presumed dead, and the shard indices it holds.
    private var workers: [WorkerID: (expiry: Double, shards: Set<Int>)] = [:]
    /// Workers that asked for work when the queue was empty, in arrival order (one entry per credit).
    private var waiting: [WorkerID] = []
    /// Shard index → the copy in flight and the worker holding it (at most one copy per shard).
    private var inFlight: [Int: (worker: WorkerID, shard: WorkShard)] = [:]
    /// (shard, attempt) → the worker it was sent to; kept after expiry so a late result is accepted.
    private var issued: [ShardAttempt: WorkerID] = [:]
    /// Every shard as planned (pending items only), by index.
    private let planned: [Int: WorkShard]
    /// Item keys the caller was told to record, or that were given up on.
    private var recorded: Set<String> = []
    private var failedKeys: Set<String> = []
    private let totalKeys: Int

    private struct ShardAttempt: Hashable {
        var shard: Int
        var attempt: Int
    }

    /// - Parameters:
    ///   - shards: the plan's shards, in plan order (target-grouped).
    ///   - pendingKeys: when resuming, the keys still to do (`Journal.pendingItems()`); items outside
    ///     it are left out and shards left empty are dropped. nil: every item is pending.
    ///   - now: the clock, in seconds (tests pass a fake one).
    public init(shards: [Shard], pendingKeys: Set<String>? = nil,
                heartbeatInterval: Double = Dispatcher.heartbeatInterval,
                liveness: Int = Dispatcher.liveness,
                maxAttempts: Int = Dispatcher.maxAttempts,
                now: @escaping () -> Double,
                log: @escaping (String) -> Void = { _ in }) {
        var queue: [WorkShard] = []
        for s in shards {
            let items = pendingKeys.map { keys in s.items.filter { keys.contains($0.key) } } ?? s.items
            if !items.isEmpty { queue.append(WorkShard(shard: s.index, attempt: 1, target: s.target, items: items)) }
        }
        self.queue = queue
        self.planned = Dictionary(queue.map { ($0.shard, $0) }, uniquingKeysWith: { a, _ in a })
        self.totalKeys = Set(queue.flatMap { $0.items.map(\.key) }).count
        self.expiryInterval = heartbeatInterval * Double(liveness)
        self.maxAttempts = max(1, maxAttempts)
        self.now = now
        self.log = log
    }

    // MARK: - State

    /// Every item is recorded or failed.
    public var isFinished: Bool { recorded.count + failedKeys.count >= totalKeys }
    /// Shards waiting in the queue (including ones whose items were since recorded by a late result).
    public var queuedShards: [WorkShard] { queue }
    /// Shard indices in flight, by worker.
    public var assignments: [WorkerID: [Int]] { workers.mapValues { $0.shards.sorted() } }
    /// Workers in the table (alive as far as we know).
    public var liveWorkers: [WorkerID] { workers.keys.sorted() }
    /// Whether `id` is in the worker table.
    public func knows(_ id: WorkerID) -> Bool { workers[id] != nil }
    public var recordedCount: Int { recorded.count }
    public var failedCount: Int { failedKeys.count }

    // MARK: - Workers

    /// A worker asked for one shard (one unit of credit). Returns the shard to send, or nil when the
    /// queue has nothing (the worker is remembered as waiting; see `dispatchWaiting`).
    public func workerReady(_ id: WorkerID) -> WorkShard? {
        touch(id)
        if let shard = nextShard() {
            assign(shard, to: id)
            return shard
        }
        if !isFinished { waiting.append(id) }
        return nil
    }

    /// Hands queued shards to workers that asked while the queue was empty (call after `tick`).
    public func dispatchWaiting() -> [(worker: WorkerID, shard: WorkShard)] {
        var out: [(worker: WorkerID, shard: WorkShard)] = []
        while !waiting.isEmpty {
            let id = waiting[0]
            guard workers[id] != nil else { waiting.removeFirst(); continue }
            guard let shard = nextShard() else { break }
            waiting.removeFirst()
            assign(shard, to: id)
            out.append((id, shard))
        }
        return out
    }

    /// Any message from a known worker refreshes its expiry. Returns false for a worker not in the
    /// table (expired or never ready): the caller may ignore it or ask it to say ready again.
    @discardableResult
    public func heartbeat(_ id: WorkerID) -> Bool {
        guard workers[id] != nil else {
            log("heartbeat from unknown worker \(id) ignored")
            return false
        }
        touch(id)
        return true
    }

    /// Drops workers whose expiry has passed; their shards go back to the front of the queue with
    /// attempt + 1 (or are reported failed after `maxAttempts`).
    public func tick() -> [ExpiredWorker] {
        let t = now()
        let dead = workers.filter { $0.value.expiry < t }.keys.sorted()
        return dead.compactMap {
            workerGone($0, reason: "worker \($0) presumed dead: no message for \(expiryInterval) s")
        }
    }

    /// A worker left (said bye, or was refused): drop it like an expired one.
    @discardableResult
    public func workerGone(_ id: WorkerID, reason: String) -> ExpiredWorker? {
        guard let entry = workers.removeValue(forKey: id) else { return nil }
        waiting.removeAll { $0 == id }
        log(reason)
        var requeued: [WorkShard] = []
        var failed: [FailedItem] = []
        // Re-queue in reverse so the lowest shard index ends up first.
        for index in entry.shards.sorted().reversed() {
            guard let held = inFlight.removeValue(forKey: index) else { continue }
            switch retry(held.shard, items: held.shard.items, reason: reason) {
            case .requeued(let shard): requeued.insert(shard, at: 0)
            case .failed(let f): failed = f + failed
            case .nothing: break
            }
        }
        return ExpiredWorker(worker: id, requeued: requeued, failed: failed)
    }

    // MARK: - Results

    /// A worker's results for one shard attempt. The first valid result per item wins; a late result
    /// from a superseded attempt (worker presumed dead) is still taken for items not yet recorded.
    public func result(_ id: WorkerID, _ result: ShardResult) -> ResultOutcome {
        guard let plannedShard = planned[result.shard] else {
            return ignore("result from \(id) for unknown shard \(result.shard)")
        }
        let key = ShardAttempt(shard: result.shard, attempt: result.attempt)
        guard let sentTo = issued[key] else {
            return ignore("result from \(id) for shard \(result.shard) attempt \(result.attempt), which is not outstanding")
        }
        guard sentTo == id else {
            return ignore("result from \(id) for shard \(result.shard) attempt \(result.attempt), which was sent to \(sentTo)")
        }
        issued[key] = nil
        if workers[id] != nil { touch(id) }

        // Is this the copy in flight (the current attempt), or a superseded one?
        var current: WorkShard?
        if let held = inFlight[result.shard], held.worker == id, held.shard.attempt == result.attempt {
            current = held.shard
            inFlight[result.shard] = nil
            workers[id]?.shards.remove(result.shard)
        }

        let shardKeys = Set(plannedShard.items.map(\.key))
        var record: [ItemReport] = []
        var duplicates: [String] = []
        var unknown: [String] = []
        var errored: [String: String] = [:]
        var seen: Set<String> = []
        for item in result.items {
            guard shardKeys.contains(item.key) else { unknown.append(item.key); continue }
            if let error = item.error {
                if !seen.contains(item.key) { errored[item.key] = error }
                continue
            }
            seen.insert(item.key)
            errored[item.key] = nil
            if recorded.contains(item.key) { duplicates.append(item.key); continue }
            recorded.insert(item.key)
            failedKeys.remove(item.key)
            record.append(item)
        }
        if !unknown.isEmpty { log("result from \(id) for shard \(result.shard): keys not in the shard dropped: \(unknown)") }

        var retried: [String] = []
        var failed: [FailedItem] = []
        if let current {
            // Items errored or missing from the current attempt are retried (newer copies cover stale ones).
            let missing = current.items.filter { !seen.contains($0.key) && !recorded.contains($0.key) && !failedKeys.contains($0.key) }
            if !missing.isEmpty {
                let reason = missing.lazy.compactMap { errored[$0.key] }.first
                    ?? "missing from the result of shard \(result.shard) attempt \(result.attempt)"
                switch retry(current, items: missing, reason: reason) {
                case .requeued(let s): retried = s.items.map(\.key)
                case .failed(let f): failed = f
                case .nothing: break
                }
            }
        }
        return .accepted(record: record, duplicates: duplicates, unknownKeys: unknown, retried: retried,
                         failed: failed, late: current == nil)
    }

    /// A worker reports it could not do a shard it holds (the whole shard). Re-queued at the front
    /// with attempt + 1, or reported failed after `maxAttempts`.
    public func failure(_ id: WorkerID, shard index: Int, reason: String) -> FailureOutcome {
        guard workers[id] != nil else { return .ignored(reason: logged("failure report from unknown worker \(id) ignored")) }
        touch(id)
        guard let held = inFlight[index], held.worker == id else {
            return .ignored(reason: logged("failure report from \(id) for shard \(index), which it does not hold, ignored"))
        }
        inFlight[index] = nil
        workers[id]?.shards.remove(index)
        issued[ShardAttempt(shard: index, attempt: held.shard.attempt)] = nil
        switch retry(held.shard, items: held.shard.items, reason: reason) {
        case .requeued(let s): return .requeued(attempt: s.attempt)
        case .failed(let f): return .failed(f)
        case .nothing: return .nothingLeft
        }
    }

    // MARK: - Internals

    private enum Retry {
        case requeued(WorkShard)
        case failed([FailedItem])
        case nothing
    }

    /// Puts the unfinished `items` of `shard` back at the front with attempt + 1, or gives up on
    /// them when `shard.attempt` was the last allowed.
    private func retry(_ shard: WorkShard, items: [WorkItem], reason: String) -> Retry {
        let left = items.filter { !recorded.contains($0.key) && !failedKeys.contains($0.key) }
        guard !left.isEmpty else { return .nothing }
        if shard.attempt >= maxAttempts {
            for item in left { failedKeys.insert(item.key) }
            log("shard \(shard.shard) failed after \(shard.attempt) attempts: \(reason)")
            return .failed(left.map { FailedItem(key: $0.key, shard: shard.shard, attempts: shard.attempt, reason: reason) })
        }
        let again = WorkShard(shard: shard.shard, attempt: shard.attempt + 1, target: shard.target, items: left)
        queue.insert(again, at: 0)
        return .requeued(again)
    }

    /// The front shard with its finished items removed; shards with nothing left are skipped.
    private func nextShard() -> WorkShard? {
        while !queue.isEmpty {
            var shard = queue.removeFirst()
            shard.items = shard.items.filter { !recorded.contains($0.key) && !failedKeys.contains($0.key) }
            if !shard.items.isEmpty { return shard }
        }
        return nil
    }

    private func assign(_ shard: WorkShard, to id: WorkerID) {
        inFlight[shard.shard] = (id, shard)
        workers[id, default: (expiry: 0, shards: [])].shards.insert(shard.shard)
        issued[ShardAttempt(shard: shard.shard, attempt: shard.attempt)] = id
    }

    private func touch(_ id: WorkerID) {
        workers[id, default: (expiry: 0, shards: [])].expiry = now() + expiryInterval
    }

    private func logged(_ line: String) -> String {
        log(line)
        return line
    }

    private func ignore(_ line: String) -> ResultOutcome {
        .ignored(reason: logged(line))
    }
}
