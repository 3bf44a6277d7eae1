import Foundation
import Sweep
import XCTest

@testable import Cluster

// The coordinator's logic (queue, expiry, re-dispatch) in-process: a fake clock, no sockets.

private final class FakeClock {
    var now: Double = 1000
    func advance(_ seconds: Double) { now += seconds }
}

private func dispatcherPlan() throws -> SweepPlan {
    let domains = ["imdb", "yelp", "sst2"]
    var adapters: [String: [String: String]] = [:]
    for d in domains { adapters[d] = ["adapter.safetensors": sha256Hex(Data("weights \(d)".utf8))] }
    let config = SweepConfig(baseModel: "models/base", domains: domains, shardSize: 3)
    return try SweepPlan(config: config, artifacts: ArtifactHashes(baseModel: sha256Hex(Data("base".utf8)), adapters: adapters))
}

/// A successful result for every item of a shard (as a worker would send it).
private func answer(_ shard: WorkShard, correct: Int = 3) -> ShardResult {
    ShardResult(shard: shard.shard, attempt: shard.attempt, items: shard.items.map {
        ItemReport(key: $0.key, n: 8, correct: correct, bits: Data([0x07]), seconds: 0.5)
    })
}

private final class Harness {
    let plan: SweepPlan
    let clock = FakeClock()
    let dispatcher: Dispatcher
    /// What the caller would write to the journal: key → results recorded (must never exceed 1).
    var journal: [String: [ItemReport]] = [:]
    var failed: [String: String] = [:]
    var logLines: [String] = []

    init(maxAttempts: Int = Dispatcher.maxAttempts) throws {
        plan = try dispatcherPlan()
        let clock = self.clock
        dispatcher = Dispatcher(shards: plan.shards(), maxAttempts: maxAttempts, now: { clock.now })
        dispatcher.log = { [unowned self] in self.logLines.append($0) }
    }

    @discardableResult
    func deliver(_ worker: WorkerID, _ result: ShardResult) -> ResultOutcome {
        let outcome = dispatcher.result(worker, result)
        for r in outcome.toRecord { journal[r.key, default: []].append(r) }
        if case .accepted(_, _, _, _, let f, _) = outcome { for item in f { failed[item.key] = item.reason } }
        return outcome
    }

    var allKeys: Set<String> { Set(plan.allItems().map(\.key)) }
}

final class DispatcherTests: XCTestCase {
    func testOneWorkerDrainsThePlanInOrder() throws {
        let h = try Harness()
        let d = h.dispatcher
        XCTAssertFalse(d.isFinished)
        var sent: [WorkShard] = []
        while let shard = d.workerReady("w1") {
            XCTAssertEqual(shard.attempt, 1)
            sent.append(shard)
            h.clock.advance(0.4)
            XCTAssertTrue(d.heartbeat("w1"))
            h.deliver("w1", answer(shard))
        }
        XCTAssertEqual(sent.map(\.shard), plan(h).shards().map(\.index), "plan order")
        XCTAssertEqual(sent.map(\.target), plan(h).shards().map(\.target), "target-grouped")
        XCTAssertEqual(Set(h.journal.keys), h.allKeys)
        XCTAssertTrue(h.journal.values.allSatisfy { $0.count == 1 })
        XCTAssertTrue(d.isFinished)
        XCTAssertTrue(d.tick().isEmpty)
        XCTAssertNil(d.workerReady("w1"))
    }

    func testTwoWorkersShareThePlanWithNoItemTwice() throws {
        let h = try Harness()
        let d = h.dispatcher
        var held: [WorkerID: WorkShard] = [:]
        for w in ["w1", "w2"] { held[w] = d.workerReady(w) }
        var perWorker: [WorkerID: Int] = [:]
        var turn = 0
        while !held.isEmpty {
            // Alternate which worker finishes first.
            let w = held.keys.sorted()[turn % held.count]
            turn += 1
            let shard = held.removeValue(forKey: w)!
            h.clock.advance(0.5)
            for other in held.keys { d.heartbeat(other) }
            let outcome = h.deliver(w, answer(shard))
            guard case .accepted(_, let dups, _, _, _, let late) = outcome else { return XCTFail("\(outcome)") }
            XCTAssertTrue(dups.isEmpty)
            XCTAssertFalse(late)
            perWorker[w, default: 0] += 1
            if let next = d.workerReady(w) { held[w] = next }
            XCTAssertTrue(d.tick().isEmpty, "nobody expires while heart-beating")
        }
        XCTAssertEqual(Set(h.journal.keys), h.allKeys)
        XCTAssertTrue(h.journal.values.allSatisfy { $0.count == 1 }, "no item twice")
        XCTAssertEqual(perWorker.values.reduce(0, +), plan(h).shards().count)
        XCTAssertGreaterThan(perWorker["w1"] ?? 0, 0)
        XCTAssertGreaterThan(perWorker["w2"] ?? 0, 0)
        XCTAssertTrue(d.isFinished)
    }

    /// Worker w1 takes shard 0 and goes silent; w2 keeps heart-beating. Returns the re-dispatched copy.
    private func expireFirstWorker(_ h: Harness) throws -> (first: WorkShard, again: WorkShard) {
        let d = h.dispatcher
        let first = try XCTUnwrap(d.workerReady("w1"))
        XCTAssertEqual(first.shard, 0)
        let window = Dispatcher.heartbeatInterval * Double(Dispatcher.liveness)
        // Just inside the window: still alive.
        h.clock.advance(window - 0.01)
        XCTAssertTrue(d.tick().isEmpty)
        XCTAssertEqual(d.liveWorkers, ["w1"])
        // Past it: presumed dead, shard back at the front with attempt 2.
        h.clock.advance(0.02)
        let expired = d.tick()
        XCTAssertEqual(expired.map(\.worker), ["w1"])
        XCTAssertEqual(expired.first?.requeued.map(\.shard), [0])
        XCTAssertEqual(expired.first?.requeued.map(\.attempt), [2])
        XCTAssertEqual(d.queuedShards.first?.shard, 0)
        XCTAssertEqual(d.queuedShards.first?.attempt, 2)
        XCTAssertTrue(d.liveWorkers.isEmpty)
        XCTAssertFalse(d.heartbeat("w1"), "an expired worker is unknown until it says ready again")
        let again = try XCTUnwrap(d.workerReady("w2"))
        XCTAssertEqual(again.shard, 0)
        XCTAssertEqual(again.attempt, 2)
        XCTAssertEqual(again.items, first.items)
        return (first, again)
    }

    func testSilentWorkerExpiresAndItsShardIsRedispatched() throws {
        let h = try Harness()
        let (_, again) = try expireFirstWorker(h)
        XCTAssertEqual(h.dispatcher.assignments, ["w2": [again.shard]])
        XCTAssertEqual(h.dispatcher.workerReady("w2")?.shard, 1, "then the plan continues in order")
    }

    func testLateResultAfterRedispatchedOneIsDropped() throws {
        let h = try Harness()
        let d = h.dispatcher
        let (first, again) = try expireFirstWorker(h)
        let fresh = h.deliver("w2", answer(again, correct: 5))
        guard case .accepted(let rec, let dups, _, _, _, let late) = fresh else { return XCTFail("\(fresh)") }
        XCTAssertEqual(rec.count, again.items.count)
        XCTAssertTrue(dups.isEmpty)
        XCTAssertFalse(late)
        let stale = h.deliver("w1", answer(first, correct: 1))
        guard case .accepted(let rec2, let dups2, _, _, _, let late2) = stale else { return XCTFail("\(stale)") }
        XCTAssertTrue(rec2.isEmpty)
        XCTAssertEqual(dups2, first.items.map(\.key))
        XCTAssertTrue(late2)
        for item in first.items {
            XCTAssertEqual(h.journal[item.key]?.count, 1, "counted once")
            XCTAssertEqual(h.journal[item.key]?.first?.correct, 5, "the first valid result wins")
        }
        // Replaying the same result is ignored.
        guard case .ignored = d.result("w1", answer(first)) else { return XCTFail("replay accepted") }
    }

    func testLateResultBeforeRedispatchedOneIsAcceptedAndTheCopyDropped() throws {
        let h = try Harness()
        let d = h.dispatcher
        let (first, again) = try expireFirstWorker(h)
        let stale = h.deliver("w1", answer(first, correct: 1))
        guard case .accepted(let rec, _, _, _, _, let late) = stale else { return XCTFail("\(stale)") }
        XCTAssertEqual(rec.map(\.key), first.items.map(\.key))
        XCTAssertTrue(late)
        let fresh = h.deliver("w2", answer(again, correct: 5))
        guard case .accepted(let rec2, let dups2, _, _, _, let late2) = fresh else { return XCTFail("\(fresh)") }
        XCTAssertTrue(rec2.isEmpty)
        XCTAssertEqual(dups2, again.items.map(\.key))
        XCTAssertFalse(late2)
        for item in first.items {
            XCTAssertEqual(h.journal[item.key]?.count, 1)
            XCTAssertEqual(h.journal[item.key]?.first?.correct, 1)
        }
        XCTAssertTrue(d.assignments["w2"]?.isEmpty ?? true, "w2's copy is no longer in flight")
    }

    func testLateResultWhileShardIsStillQueuedSkipsIt() throws {
        let h = try Harness()
        let d = h.dispatcher
        let first = try XCTUnwrap(d.workerReady("w1"))
        h.clock.advance(Dispatcher.heartbeatInterval * Double(Dispatcher.liveness) + 1)
        XCTAssertEqual(d.tick().first?.requeued.map(\.shard), [first.shard])
        XCTAssertEqual(h.deliver("w1", answer(first)).toRecord.count, first.items.count)
        // The queued copy has nothing left; the next worker gets shard 1.
        XCTAssertEqual(d.workerReady("w2")?.shard, 1)
    }

    func testShardFailingMaxAttemptsIsReportedFailedAndTheRestCompletes() throws {
        let h = try Harness()
        let d = h.dispatcher
        let shards = plan(h).shards()
        let doomed = shards[1].index
        var failures: [FailedItem] = []
        while !d.isFinished {
            guard let shard = d.workerReady("w1") else { return XCTFail("stalled") }
            if shard.shard == doomed {
                switch d.failure("w1", shard: shard.shard, reason: "out of memory") {
                case .requeued(let attempt):
                    XCTAssertEqual(attempt, shard.attempt + 1)
                    XCTAssertLessThan(shard.attempt, Dispatcher.maxAttempts)
                case .failed(let items):
                    XCTAssertEqual(shard.attempt, Dispatcher.maxAttempts)
                    failures += items
                default:
                    XCTFail("unexpected outcome")
                }
            } else {
                h.deliver("w1", answer(shard))
            }
        }
        XCTAssertEqual(failures.map(\.key), shards[1].items.map(\.key))
        XCTAssertTrue(failures.allSatisfy { $0.reason == "out of memory" && $0.attempts == Dispatcher.maxAttempts })
        XCTAssertEqual(Set(h.journal.keys), h.allKeys.subtracting(failures.map(\.key)))
        XCTAssertEqual(d.failedCount, shards[1].items.count)
        XCTAssertNil(d.workerReady("w1"))
    }

    func testItemErrorsAreRetriedAlone() throws {
        let h = try Harness(maxAttempts: 2)
        let d = h.dispatcher
        let shard = try XCTUnwrap(d.workerReady("w1"))
        var result = answer(shard)
        result.items[1] = ItemReport(key: shard.items[1].key, n: 0, correct: 0, bits: Data(), seconds: 0, error: "nan loss")
        result.items.removeLast()
        let outcome = h.deliver("w1", result)
        guard case .accepted(let rec, _, _, let retried, _, _) = outcome else { return XCTFail("\(outcome)") }
        XCTAssertEqual(rec.map(\.key), [shard.items[0].key])
        XCTAssertEqual(retried, [shard.items[1].key, shard.items[2].key])
        let retry = try XCTUnwrap(d.workerReady("w1"))
        XCTAssertEqual(retry.shard, shard.shard)
        XCTAssertEqual(retry.attempt, 2)
        XCTAssertEqual(retry.items.map(\.key), retried)
        var bad = answer(retry)
        bad.items[0].error = "nan loss"
        guard case .accepted(let rec2, _, _, _, let failed, _) = h.deliver("w1", bad) else { return XCTFail() }
        XCTAssertEqual(rec2.map(\.key), [retry.items[1].key])
        XCTAssertEqual(failed.map(\.key), [retry.items[0].key])
        XCTAssertEqual(failed.first?.reason, "nan loss")
    }

    func testUnknownResultsAreIgnoredAndLogged() throws {
        let h = try Harness()
        let d = h.dispatcher
        let shard = try XCTUnwrap(d.workerReady("w1"))
        // Unknown shard index.
        guard case .ignored(let r1) = h.deliver("w1", ShardResult(shard: 9999, attempt: 1, items: [])) else { return XCTFail() }
        XCTAssertTrue(r1.contains("unknown shard 9999"), r1)
        // A worker that never had the shard.
        guard case .ignored(let r2) = h.deliver("stranger", answer(shard)) else { return XCTFail() }
        XCTAssertTrue(r2.contains("sent to w1"), r2)
        // An attempt never sent.
        var wrongAttempt = answer(shard)
        wrongAttempt.attempt = 7
        guard case .ignored = h.deliver("w1", wrongAttempt) else { return XCTFail() }
        // Failure reports and heartbeats from strangers.
        guard case .ignored = d.failure("stranger", shard: shard.shard, reason: "x") else { return XCTFail() }
        XCTAssertFalse(d.heartbeat("stranger"))
        XCTAssertTrue(h.journal.isEmpty)
        XCTAssertEqual(h.logLines.count, 5, "\(h.logLines)")
        // Keys outside the shard are dropped, the rest recorded.
        var extra = answer(shard)
        extra.items.append(ItemReport(key: "not-a-key", n: 8, correct: 1, bits: Data([1]), seconds: 0))
        guard case .accepted(let rec, _, let unknown, _, _, _) = h.deliver("w1", extra) else { return XCTFail() }
        XCTAssertEqual(rec.count, shard.items.count)
        XCTAssertEqual(unknown, ["not-a-key"])
    }

    func testResumeSkipsDoneItemsAndWaitingWorkersGetRequeuedShards() throws {
        let p = try dispatcherPlan()
        let shards = p.shards()
        let clock = FakeClock()
        let pending = Set(shards[2...].flatMap(\.items).map(\.key)).union([shards[0].items[0].key])
        let d = Dispatcher(shards: shards, pendingKeys: pending, now: { clock.now })
        let first = try XCTUnwrap(d.workerReady("w1"))
        XCTAssertEqual(first.items.map(\.key), [shards[0].items[0].key])
        let second = try XCTUnwrap(d.workerReady("w1"))
        XCTAssertEqual(second.shard, 2, "shard 1 has nothing pending")
        _ = d.result("w1", answer(second))
        // Drain the rest with w1, except shard 0 (w1 goes silent on it).
        while let s = d.workerReady("w1") { _ = d.result("w1", answer(s)) }
        XCTAssertNil(d.workerReady("w2"), "nothing queued: w2 waits")
        clock.advance(Dispatcher.heartbeatInterval * Double(Dispatcher.liveness) + 0.5)
        XCTAssertTrue(d.heartbeat("w2"), "a waiting worker stays in the table while it heart-beats")
        XCTAssertEqual(d.tick().map(\.worker), ["w1"])
        let handed = d.dispatchWaiting()
        XCTAssertEqual(handed.map(\.worker), ["w2"])
        XCTAssertEqual(handed.map(\.shard.shard), [0])
        XCTAssertEqual(handed.map(\.shard.attempt), [2])
        XCTAssertFalse(d.isFinished)
        let redone = try XCTUnwrap(handed.first)
        XCTAssertEqual(d.result("w2", answer(redone.shard)).toRecord.count, 1)
        XCTAssertTrue(d.isFinished)
    }

    private func plan(_ h: Harness) -> SweepPlan { h.plan }
}
