import CZeroMQ
import Foundation
import Sweep
import Tensor
import XCTest

@testable import Cluster

// MARK: - Helpers

private func samplePlan() throws -> SweepPlan {
    let domains = ["imdb", "yelp", "sst2"]
    var adapters: [String: [String: String]] = [:]
    for d in domains { adapters[d] = ["adapter.safetensors": sha256Hex(Data("weights \(d)".utf8))] }
    let config = SweepConfig(baseModel: "models/base", domains: domains, shardSize: 4)
    return try SweepPlan(config: config, artifacts: ArtifactHashes(baseModel: sha256Hex(Data("base".utf8)), adapters: adapters))
}

private func policy(_ plan: SweepPlan, sweepId: String = "sweep-1") throws -> PeerPolicy {
    let hash = try XCTUnwrap(PlanHash(plan: plan))
    return PeerPolicy(sweepId: sweepId, planHash: hash)
}

/// Every kind of payload, with realistic contents.
private func samplePayloads(_ plan: SweepPlan) throws -> [Payload] {
    let shard = try XCTUnwrap(plan.shards().first)
    let results = shard.items.enumerated().map { i, item in
        ItemReport(ItemOutcome(key: item.key, correctness: (0..<(10 + i)).map { $0 % 3 != 1 }, meanFSD: i == 0 ? nil : 0.25 + Double(i) / 64,
                               weightsChangingDirection: i == 0 ? nil : 0.125, seconds: 0.25))
    }
    return [
        .hello(Hello(worker: "node1:1234", pid: 1234, threads: 2)),
        .ready(Ready(credit: 2)),
        .work(WorkShard(shard, attempt: 1)),
        .result(ShardResult(shard: shard.index, attempt: 1, items: results + [
            ItemReport(key: "failed-item", n: 0, correct: 0, bits: Data(), seconds: 0, error: "out of memory"),
        ], timing: ShardTiming(setup: 1.5, merge: 0.25, evaluate: 2.75))),
        .heartbeat(sequence: 0x0102_0304_0506_0708),
        .refuse(Refusal(code: .planHash, reason: "plan hash differs")),
        .bye(Bye(reason: "sweep finished", finished: true)),
        .welcome(Welcome(config: plan.config.canonicalJSON(), artifacts: plan.artifacts, heartbeatInterval: 0.5, liveness: 4)),
        .fetch(FetchRequest(sha256: String(repeating: "ab", count: 32), offset: 1 << 20, length: 1 << 20)),
        .blob(BlobChunk(sha256: String(repeating: "ab", count: 32), offset: 4, total: 10, data: Data([1, 2, 3, 4, 5, 6]))),
    ]
}

/// A ROUTER bound on loopback and a DEALER connected to it, both used on the calling thread.
private final class Pair {
    let context: ZMQContext
    let router: ZMQSocket
    let dealer: ZMQSocket
    let endpoint: String

    init() throws {
        context = try ZMQContext()
        router = try ZMQSocket(context, .router)
        try router.setMaxMessageSize(WireProtocol.maxMessageSize)
        try router.bind("tcp://127.0.0.1:*")
        endpoint = try router.lastEndpoint()
        dealer = try ZMQSocket(context, .dealer)
        try dealer.connect(endpoint)
    }

    func close() {
        dealer.close()
        router.close()
    }
}


private func randomBytes(_ count: Int, _ rng: inout SplitMix64) -> Data {
    Data((0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) })
}

/// Thread-safe state shared between the test thread and the server thread.
private final class ServerState: @unchecked Sendable {
    private let lock = NSLock()
    private var _endpoint: String?
    private var _stop = false
    private var _errors: [WireError] = []
    private var _policyRefusals = 0
    private var _accepted: [WireMessage] = []
    private var _failure: String?
    let started = DispatchSemaphore(value: 0)
    let finished = DispatchSemaphore(value: 0)

    func locked<T>(_ body: () -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return body()
    }

    var endpoint: String? {
        get { locked { _endpoint } }
        set { locked { _endpoint = newValue } }
    }
    var stop: Bool {
        get { locked { _stop } }
        set { locked { _stop = newValue } }
    }
    var failure: String? {
        get { locked { _failure } }
        set { locked { _failure = newValue } }
    }
    func record(_ error: WireError) { locked { _errors.append(error) } }
    func recordPolicyRefusal() { locked { _policyRefusals += 1 } }
    func record(_ message: WireMessage) { locked { _accepted.append(message) } }
    var errors: [WireError] { locked { _errors } }
    var policyRefusals: Int { locked { _policyRefusals } }
    var accepted: [WireMessage] { locked { _accepted } }
}

// MARK: - Tests

final class ProtocolTests: XCTestCase {
    func testPlanHashHexRoundTrip() throws {
        let plan = try samplePlan()
        let hash = try XCTUnwrap(PlanHash(plan: plan))
        XCTAssertEqual(hash.bytes.count, 32)
        XCTAssertEqual(hash.hex, plan.hash.lowercased())
        XCTAssertNil(PlanHash(hex: "abc"))
        XCTAssertNil(PlanHash(hex: String(repeating: "g", count: 64)))
        XCTAssertNil(PlanHash(bytes: Data(count: 31)))
    }

    func testEncodeDecodeEveryKind() throws {
        let plan = try samplePlan()
        let p = try policy(plan)
        let payloads = try samplePayloads(plan)
        XCTAssertEqual(Set(payloads.map(\.kind)), Set(MessageKind.allCases))
        for payload in payloads {
            let message = p.message(payload)
            let frames = try message.encode()
            XCTAssertEqual(frames.count, WireProtocol.frameCount)
            XCTAssertEqual(frames[0].count, WireProtocol.headerLength)
            XCTAssertEqual(frames[1], Data([payload.kind.rawValue]))
            XCTAssertEqual(try WireMessage.decode(frames), message)
        }
    }

    func testDecodeRejectsMalformedFramesWithTypedErrors() throws {
        let plan = try samplePlan()
        let p = try policy(plan)
        let good = try p.message(.heartbeat(sequence: 7)).encode()
        func expect(_ frames: [Data], _ expected: WireError, line: UInt = #line) {
            XCTAssertThrowsError(try WireMessage.decode(frames), line: line) { error in
                XCTAssertEqual(error as? WireError, expected, line: line)
            }
        }
        expect([], .wrongFrameCount(0))
        expect(Array(good.prefix(4)), .wrongFrameCount(4))
        expect(good + [Data()], .wrongFrameCount(6))
        var f = good
        f[0] = Data(good[0].prefix(3))
        expect(f, .badHeaderLength(3))
        f = good
        f[0][0] = 0x58
        expect(f, .badMagic)
        f = good
        f[0][5] = 9
        expect(f, .unsupportedVersion(9))
        f = good
        f[0][7] = 1
        expect(f, .badHeaderFlags(1))
        f = good
        f[1] = Data([1, 2])
        expect(f, .badKindFrame(length: 2))
        f = good
        f[1] = Data([200])
        expect(f, .unknownKind(200))
        f = good
        f[2] = Data()
        expect(f, .badSweepId("length 0 not in 1...128"))
        f = good
        f[2] = Data([0xFF, 0xFE])
        expect(f, .badSweepId("not UTF-8"))
        f = good
        f[3] = Data(count: 31)
        expect(f, .badPlanHash(length: 31))
        f = good
        f[4] = Data([2, 0, 0])
        expect(f, .payloadFrameTooShort(3))
        f = good
        f[4][0] = 7
        expect(f, .unknownEncoding(7))
        f = good
        f[4][0] = PayloadEncoding.json.rawValue
        expect(f, .wrongEncoding(kind: .heartbeat, encoding: 1))
        f = good
        f[4].replaceSubrange(1..<5, with: [0xFF, 0xFF, 0xFF, 0xFF])
        expect(f, .payloadTooLarge(declared: 0xFFFF_FFFF))
        f = good
        f[4].replaceSubrange(1..<5, with: [0, 0, 0, 9])
        expect(f, .payloadLengthMismatch(declared: 9, actual: 8))
        // A heartbeat of the wrong size, and JSON that is not the payload's type.
        f = good
        f[4] = Data([2, 0, 0, 0, 2, 1, 2])
        expect(f, .badPayload(kind: .heartbeat, reason: "heartbeat body is 2 bytes, expected 8"))
        f = try p.message(.ready(Ready())).encode()
        f[4] = Data([1, 0, 0, 0, 2]) + Data("{}".utf8)
        expect(f, .badPayload(kind: .ready, reason: "invalid JSON for Ready"))
        // Semantic checks on results.
        // correct > n; correct disagreeing with the bits; a bit set past n.
        for item in [ItemReport(key: "k", n: 4, correct: 5, bits: Data([0]), seconds: 1),
                     ItemReport(key: "k", n: 4, correct: 1, bits: Data([0b0011]), seconds: 1),
                     ItemReport(key: "k", n: 4, correct: 1, bits: Data([0b1_0000]), seconds: 1)] {
            let bad = ShardResult(shard: 0, attempt: 1, items: [item])
            XCTAssertThrowsError(try WireMessage.decode(p.message(.result(bad)).encode())) { error in
                guard case .badPayload(kind: .result, _)? = error as? WireError else { return XCTFail("\(error)") }
            }
        }
        // Routed: no identity frame at all.
        if case .refused(identity: nil, _, error: .missingEnvelope?) = p.admit([]) {} else { XCTFail("empty routed message admitted") }
    }

    /// Every kind travels DEALER → ROUTER and back over real loopback sockets.
    func testRouterDealerRoundTripOfEveryKind() throws {
        let plan = try samplePlan()
        let p = try policy(plan)
        let pair = try Pair()
        defer { pair.close() }
        XCTAssertTrue(pair.endpoint.hasPrefix("tcp://127.0.0.1:"), pair.endpoint)
        for payload in try samplePayloads(plan) {
            let message = p.message(payload)
            XCTAssertTrue(try pair.dealer.send(message.encode(), timeout: 5))
            let routed = try XCTUnwrap(try pair.router.receive(timeout: 5), "router got nothing for \(payload.kind)")
            guard case .accepted(let identity, let received) = p.admit(routed) else {
                return XCTFail("\(payload.kind) not accepted: \(p.admit(routed))")
            }
            XCTAssertEqual(received, message)
            XCTAssertTrue(try pair.router.send([identity] + message.encode(), timeout: 5))
            let back = try XCTUnwrap(try pair.dealer.receive(timeout: 5), "dealer got nothing for \(payload.kind)")
            XCTAssertEqual(try WireMessage.decode(back), message)
        }
    }

    func testReceiveTimesOutAndRouterRejectsUnknownPeer() throws {
        let pair = try Pair()
        defer { pair.close() }
        let start = Date()
        XCTAssertNil(try pair.router.receive(timeout: 0.05))
        XCTAssertLessThan(Date().timeIntervalSince(start), 2)
        XCTAssertThrowsError(try pair.router.send([Data("nobody".utf8), Data("x".utf8)], timeout: 1)) { error in
            XCTAssertEqual((error as? ZMQError)?.code, EHOSTUNREACH)
            XCTAssertFalse((error as? ZMQError)?.message.isEmpty ?? true)
        }
        let closed = try ZMQSocket(pair.context, .dealer)
        closed.close()
        XCTAssertThrowsError(try closed.connect(pair.endpoint)) { XCTAssertTrue($0 is ZMQError) }
        XCTAssertThrowsError(try pair.router.bind("nonsense://x")) { XCTAssertTrue($0 is ZMQError) }
    }

    /// A worker speaking another protocol version, or holding another plan, is refused with a reason.
    func testVersionAndPlanHashMismatchAreRefusedWithReason() throws {
        let plan = try samplePlan()
        let p = try policy(plan)
        let pair = try Pair()
        defer { pair.close() }
        let hello = Payload.hello(Hello(worker: "w", pid: 1, threads: 1))
        let otherHash = try XCTUnwrap(PlanHash(bytes: Data(repeating: 0x11, count: 32)))
        let cases: [(frames: [Data], code: RefuseCode, mention: String)] = [
            (try p.message(hello).encode(version: 2), .protocolVersion, "version 2"),
            (try WireMessage(sweepId: "sweep-1", planHash: otherHash, payload: hello).encode(), .planHash, otherHash.hex),
            (try WireMessage(sweepId: "sweep-2", planHash: p.planHash, payload: hello).encode(), .sweepId, "sweep-2"),
        ]
        for c in cases {
            XCTAssertTrue(try pair.dealer.send(c.frames, timeout: 5))
            let routed = try XCTUnwrap(try pair.router.receive(timeout: 5))
            guard case .refused(let identity?, let refusal, _) = p.admit(routed) else { return XCTFail("not refused: \(c.code)") }
            XCTAssertEqual(refusal.code, c.code)
            XCTAssertTrue(refusal.reason.contains(c.mention), refusal.reason)
            XCTAssertTrue(try pair.router.send([identity] + p.message(.refuse(refusal)).encode(), timeout: 5))
            let answer = try WireMessage.decode(try XCTUnwrap(try pair.dealer.receive(timeout: 5)))
            guard case .refuse(let r) = answer.payload else { return XCTFail("expected refuse, got \(answer.kind)") }
            XCTAssertEqual(r.code, c.code)
            XCTAssertEqual(r.version, Int(WireProtocol.version))
            XCTAssertEqual(answer.planHash, p.planHash, "the refusal names the coordinator's plan")
        }
    }

    /// 2,000 seeded malformed messages from a raw DEALER to a ROUTER that decodes and answers on its
    /// own thread: nothing crashes, each is refused (malformed ones with a typed error), and a valid
    /// message afterwards is still accepted and answered.
    func testFuzzedMessagesAreRefusedAndServerStaysUsable() throws {
        let plan = try samplePlan()
        let p = try policy(plan)
        let context = try ZMQContext()
        let state = ServerState()
        let shard = try XCTUnwrap(plan.shards().first)
        let work = try p.message(.work(WorkShard(shard, attempt: 1))).encode()

        let server = Thread {
            do {
                let router = try ZMQSocket(context, .router)
                defer { router.close() }
                try router.setMaxMessageSize(WireProtocol.maxMessageSize)
                try router.bind("tcp://127.0.0.1:*")
                state.endpoint = try router.lastEndpoint()
                state.started.signal()
                while !state.stop {
                    guard let frames = try router.receive(timeout: 0.05) else { continue }
                    switch p.admit(frames) {
                    case .accepted(let identity, let message):
                        state.record(message)
                        try router.send([identity] + work, timeout: 2)
                    case .refused(let identity, let refusal, let error):
                        if let error { state.record(error) } else { state.recordPolicyRefusal() }
                        if let identity { try router.send([identity] + p.message(.refuse(refusal)).encode(), timeout: 2) }
                    }
                }
            } catch {
                state.failure = "\(error)"
                state.started.signal()
            }
            state.finished.signal()
        }
        server.start()
        defer {
            state.stop = true
            _ = state.finished.wait(timeout: .now() + 5)
        }
        XCTAssertEqual(state.started.wait(timeout: .now() + 5), .success)
        let endpoint = try XCTUnwrap(state.endpoint, state.failure ?? "server did not start")

        let dealer = try ZMQSocket(context, .dealer)
        defer { dealer.close() }
        try dealer.connect(endpoint)

        var rng = SplitMix64(seed: 0x5EED_0006)
        let valid = try samplePayloads(plan).map { try p.message($0).encode() }
        let count = 2000
        var mustFail = 0
        let deadline = Date().addingTimeInterval(60)
        for i in 0..<count {
            var frames = valid[Int.random(in: 0..<valid.count, using: &rng)]
            var alwaysInvalid = true
            switch i % 7 {
            case 0: // random frames, random count
                frames = (0..<Int.random(in: 1...8, using: &rng)).map { _ in randomBytes(Int.random(in: 0...64, using: &rng), &rng) }
            case 1: // truncate one frame
                let f = Int.random(in: 0..<frames.count, using: &rng)
                let cut = Int.random(in: 1...max(1, frames[f].count), using: &rng)
                frames[f] = Data(Array(frames[f]).dropLast(min(cut, frames[f].count)))
                if f == 1 && frames[1].isEmpty == false { alwaysInvalid = false }
            case 2: // wrong frame count
                if Bool.random(using: &rng) || frames.count < 2 {
                    frames += (0..<Int.random(in: 1...3, using: &rng)).map { _ in randomBytes(Int.random(in: 0...16, using: &rng), &rng) }
                } else {
                    frames = Array(frames.prefix(Int.random(in: 1..<WireProtocol.frameCount, using: &rng)))
                }
            case 3: // absurd or wrong length field
                let declared: UInt32 = Bool.random(using: &rng)
                    ? UInt32.random(in: UInt32(WireProtocol.maxPayloadLength + 1)...UInt32.max, using: &rng)
                    : UInt32(frames[4].count - WireProtocol.payloadPrefixLength) &+ UInt32.random(in: 1...1000, using: &rng)
                frames[4].replaceSubrange(1..<5, with: [UInt8(declared >> 24), UInt8((declared >> 16) & 0xFF), UInt8((declared >> 8) & 0xFF), UInt8(declared & 0xFF)])
            case 4: // unknown kind
                frames[1] = Data([Bool.random(using: &rng) ? 0 : UInt8.random(in: 8...255, using: &rng)])
            case 5: // valid envelope, random body
                let kind = MessageKind.allCases[Int.random(in: 0..<MessageKind.allCases.count, using: &rng)]
                let body = randomBytes(Int.random(in: 0...48, using: &rng), &rng)
                frames[1] = Data([kind.rawValue])
                let n = UInt32(body.count)
                frames[4] = Data([kind.encoding.rawValue, UInt8(n >> 24), UInt8((n >> 16) & 0xFF), UInt8((n >> 8) & 0xFF), UInt8(n & 0xFF)]) + body
                if kind == .heartbeat && body.count == 8 { alwaysInvalid = false }
            default: // flip random bytes anywhere (may leave a valid message: then it is accepted)
                alwaysInvalid = false
                for _ in 0..<Int.random(in: 1...4, using: &rng) {
                    let f = Int.random(in: 0..<frames.count, using: &rng)
                    guard !frames[f].isEmpty else { continue }
                    let at = Int.random(in: 0..<frames[f].count, using: &rng)
                    frames[f][at] ^= UInt8.random(in: 1...255, using: &rng)
                }
            }
            if alwaysInvalid { mustFail += 1 }
            XCTAssertTrue(try dealer.send(frames, timeout: 2), "send \(i)")
            let answer = try XCTUnwrap(try dealer.receive(timeout: 5), "no answer to fuzz message \(i)")
            let decoded = try WireMessage.decode(answer)
            if alwaysInvalid {
                guard case .refuse = decoded.payload else { return XCTFail("fuzz message \(i) (case \(i % 7)) was not refused") }
            }
            if Date() > deadline { return XCTFail("fuzz loop too slow: \(i) messages in 60 s") }
        }
        XCTAssertNil(state.failure)
        let errors = state.errors.count, refusals = state.policyRefusals, accepted = state.accepted.count
        print("fuzz: \(count) messages: \(errors) typed decode errors, \(refusals) policy refusals, \(accepted) still valid (byte flips)")
        XCTAssertEqual(errors + refusals + accepted, count)
        XCTAssertGreaterThanOrEqual(errors + refusals, mustFail)
        XCTAssertGreaterThan(errors, count / 2)

        // The server still serves: a valid hello gets a work shard.
        XCTAssertTrue(try dealer.send(p.message(.hello(Hello(worker: "after-fuzz", pid: 9, threads: 1))).encode(), timeout: 2))
        let reply = try WireMessage.decode(try XCTUnwrap(try dealer.receive(timeout: 5)))
        guard case .work(let w) = reply.payload else { return XCTFail("expected work, got \(reply.kind)") }
        XCTAssertEqual(w.items, shard.items)
        XCTAssertEqual(state.accepted.last?.payload, .hello(Hello(worker: "after-fuzz", pid: 9, threads: 1)))
        XCTAssertNil(state.failure)
    }
}

final class JoiningTests: XCTestCase {
    /// A worker that does not know the sweep says hello with sweep id `*` and an all-zero plan hash;
    /// one pinned to a plan says `*` with that hash. Everything else must carry both exactly.
    func testHelloMayJoinAnySweepOrAPinnedPlanOnly() throws {
        let plan = try samplePlan()
        let p = try policy(plan)
        let hello = Payload.hello(Hello(worker: "w", pid: 1, threads: 1))
        XCTAssertNil(p.check(WireMessage(sweepId: WireProtocol.anySweep, planHash: .unknown, payload: hello)))
        XCTAssertNil(p.check(WireMessage(sweepId: WireProtocol.anySweep, planHash: p.planHash, payload: hello)))
        let other = PlanHash(bytes: Data(repeating: 0xAB, count: 32))!
        XCTAssertEqual(p.check(WireMessage(sweepId: WireProtocol.anySweep, planHash: other, payload: hello))?.code, .planHash)
        // Only hello may join: a heartbeat or a result from an unknown sweep is refused.
        XCTAssertEqual(p.check(WireMessage(sweepId: WireProtocol.anySweep, planHash: .unknown, payload: .heartbeat(sequence: 1)))?.code, .planHash)
        XCTAssertEqual(p.check(WireMessage(sweepId: WireProtocol.anySweep, planHash: p.planHash, payload: .ready(Ready())))?.code, .sweepId)
        XCTAssertTrue(PlanHash.unknown.isUnknown)
        XCTAssertFalse(p.planHash.isUnknown)
    }

    /// An evaluator's outcome on the wire: bits packed LSB-first, FSD figures kept; an error carries no bits.
    func testItemReportFromOutcome() {
        let ok = ItemReport(ItemOutcome(key: "k", correctness: [true, false, true, true, false, false, false, false, true],
                                        meanFSD: 0.5, weightsChangingDirection: 0.25, seconds: 1.5))
        XCTAssertEqual(ok.n, 9)
        XCTAssertEqual(ok.correct, 4)
        XCTAssertEqual(ok.bits, Data([0b0000_1101, 0b0000_0001]))
        XCTAssertEqual(ok.meanFSD, 0.5)
        XCTAssertEqual(ok.weightsChangingDirection, 0.25)
        let bad = ItemReport(ItemOutcome.failed("k", "no such adapter"))
        XCTAssertEqual(bad.n, 0)
        XCTAssertEqual(bad.bits, Data())
        XCTAssertEqual(bad.error, "no such adapter")
    }
}
