import Foundation
import Sweep

// The coordinator ⇄ worker wire protocol. docs/protocol.md describes the frames byte by byte;
// keep the two in step.

/// Constants of the wire protocol.
public enum WireProtocol {
    /// Frame 0 starts with these four bytes: "AMXP".
    public static let magic: [UInt8] = [0x41, 0x4D, 0x58, 0x50]
    /// The version this build speaks. Peers with another version are refused.
    public static let version: UInt16 = 1
    /// Frame 0 is exactly this long: magic (4) + version (2, big-endian) + flags (2, zero in v1).
    public static let headerLength = 8
    /// Frames in a message as a DEALER sends it (a ROUTER sees one more in front: the peer identity).
    public static let frameCount = 5
    /// Sweep ids are 1...maxSweepIdLength bytes of UTF-8 without control characters.
    public static let maxSweepIdLength = 128
    /// Plan hashes travel as the 32 raw bytes of the SHA-256 digest.
    public static let planHashLength = 32
    /// Payload frame prefix: encoding (1) + body length (4, big-endian).
    public static let payloadPrefixLength = 5
    /// Largest payload body accepted (16 MiB); a longer declared length is an error before any allocation.
    public static let maxPayloadLength = 16 << 20
    /// The sweep id a worker sends in `hello` when it will join whatever sweep the coordinator runs.
    public static let anySweep = "*"
    /// A sensible `ZMQ_MAXMSGSIZE` for sockets speaking this protocol.
    public static let maxMessageSize: Int64 = Int64(maxPayloadLength + 4096)
}

/// The kind of a message: frame 1, one byte.
public enum MessageKind: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// worker → coordinator: introduces the worker (first message after connecting).
    case hello = 1
    /// worker → coordinator: "give me work" (credit = shards it can take now).
    case ready = 2
    /// coordinator → worker: one shard of work items.
    case work = 3
    /// worker → coordinator: the results of one shard.
    case result = 4
    /// either way: liveness, with a sequence number.
    case heartbeat = 5
    /// either way: the peer is refused, with a code and a reason.
    case refuse = 6
    /// either way: orderly goodbye (sweep finished, worker shutting down).
    case bye = 7
    /// coordinator → worker: the answer to hello (the sweep's config, artifacts and heartbeat settings).
    case welcome = 8
    /// worker → coordinator: send me bytes of the artifact with this SHA-256.
    case fetch = 9
    /// coordinator → worker: a chunk of an artifact.
    case blob = 10

    public var description: String {
        switch self {
        case .hello: return "hello"
        case .ready: return "ready"
        case .work: return "work"
        case .result: return "result"
        case .heartbeat: return "heartbeat"
        case .refuse: return "refuse"
        case .bye: return "bye"
        case .welcome: return "welcome"
        case .fetch: return "fetch"
        case .blob: return "blob"
        }
    }

    /// The payload encoding each kind must use.
    public var encoding: PayloadEncoding { self == .heartbeat ? .binary : .json }
}

/// Byte 0 of the payload frame.
public enum PayloadEncoding: UInt8, Sendable {
    case empty = 0
    case json = 1
    case binary = 2
}

/// Why a multipart message was rejected. Decoding never traps; every malformed input ends here.
public enum WireError: Error, Equatable, Sendable, CustomStringConvertible {
    case wrongFrameCount(Int)
    case badHeaderLength(Int)
    case badMagic
    case unsupportedVersion(UInt16)
    case badHeaderFlags(UInt16)
    case badKindFrame(length: Int)
    case unknownKind(UInt8)
    case badSweepId(String)
    case badPlanHash(length: Int)
    case payloadFrameTooShort(Int)
    case unknownEncoding(UInt8)
    case wrongEncoding(kind: MessageKind, encoding: UInt8)
    case payloadTooLarge(declared: UInt32)
    case payloadLengthMismatch(declared: UInt32, actual: Int)
    case badPayload(kind: MessageKind, reason: String)
    case missingEnvelope

    public var description: String {
        switch self {
        case .wrongFrameCount(let n): return "expected \(WireProtocol.frameCount) frames, got \(n)"
        case .badHeaderLength(let n): return "header frame is \(n) bytes, expected \(WireProtocol.headerLength)"
        case .badMagic: return "header does not start with the AMXP magic"
        case .unsupportedVersion(let v): return "protocol version \(v) is not supported (this peer speaks \(WireProtocol.version))"
        case .badHeaderFlags(let f): return "header flags \(f) must be 0 in version \(WireProtocol.version)"
        case .badKindFrame(let n): return "kind frame is \(n) bytes, expected 1"
        case .unknownKind(let k): return "unknown message kind \(k)"
        case .badSweepId(let why): return "bad sweep id: \(why)"
        case .badPlanHash(let n): return "plan hash frame is \(n) bytes, expected \(WireProtocol.planHashLength)"
        case .payloadFrameTooShort(let n): return "payload frame is \(n) bytes, shorter than its \(WireProtocol.payloadPrefixLength)-byte prefix"
        case .unknownEncoding(let e): return "unknown payload encoding \(e)"
        case .wrongEncoding(let k, let e): return "payload encoding \(e) is not allowed for \(k)"
        case .payloadTooLarge(let d): return "declared payload length \(d) exceeds the limit \(WireProtocol.maxPayloadLength)"
        case .payloadLengthMismatch(let d, let a): return "declared payload length \(d) but \(a) bytes follow"
        case .badPayload(let k, let why): return "bad \(k) payload: \(why)"
        case .missingEnvelope: return "message has no routing identity frame"
        }
    }
}

/// A plan hash: the 32 bytes of the SHA-256 digest that `SweepPlan.hash` shows as hex.
public struct PlanHash: Hashable, Sendable, CustomStringConvertible {
    public let bytes: Data

    public init?(bytes: Data) {
        guard bytes.count == WireProtocol.planHashLength else { return nil }
        self.bytes = Data(bytes)
    }

    /// From 64 hex digits (either case).
    public init?(hex: String) {
        let chars = Array(hex.utf8)
        guard chars.count == WireProtocol.planHashLength * 2 else { return nil }
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case 0x30...0x39: return c - 0x30
            case 0x61...0x66: return c - 0x61 + 10
            case 0x41...0x46: return c - 0x41 + 10
            default: return nil
            }
        }
        var out = Data(capacity: WireProtocol.planHashLength)
        var i = 0
        while i < chars.count {
            guard let hi = nibble(chars[i]), let lo = nibble(chars[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        bytes = out
    }

    public init?(plan: SweepPlan) { self.init(hex: plan.hash) }

    /// All zeros: what a worker that does not know the sweep yet puts in its `hello` (with the
    /// sweep id `WireProtocol.anySweep`); the coordinator answers with `welcome`.
    public static let unknown = PlanHash(bytes: Data(count: WireProtocol.planHashLength))!
    public var isUnknown: Bool { bytes.allSatisfy { $0 == 0 } }

    public var hex: String { bytes.map { String(format: "%02x", $0) }.joined() }
    public var description: String { hex }
}

// MARK: - Payloads

/// worker → coordinator, first message.
public struct Hello: Codable, Equatable, Sendable {
    /// A human-readable worker name (host:pid); the coordinator keys peers by ZeroMQ identity.
    public var worker: String
    public var pid: Int
    /// BLAS threads the worker evaluates with.
    public var threads: Int
    public init(worker: String, pid: Int, threads: Int) {
        self.worker = worker
        self.pid = pid
        self.threads = threads
    }
}

/// worker → coordinator: ready for `credit` more shards.
public struct Ready: Codable, Equatable, Sendable {
    public var credit: Int
    public init(credit: Int = 1) { self.credit = credit }
}

/// coordinator → worker: one shard (items of one target), with its attempt number.
public struct WorkShard: Codable, Equatable, Sendable {
    public var shard: Int
    public var attempt: Int
    public var target: String
    public var items: [WorkItem]
    public init(shard: Int, attempt: Int, target: String, items: [WorkItem]) {
        self.shard = shard
        self.attempt = attempt
        self.target = target
        self.items = items
    }
    public init(_ shard: Shard, attempt: Int) {
        self.init(shard: shard.index, attempt: attempt, target: shard.target, items: shard.items)
    }
}

/// One item's outcome on the wire. `bits` holds one correctness bit per example, LSB-first, ⌈n/8⌉ bytes.
public struct ItemReport: Codable, Equatable, Sendable {
    public var key: String
    public var n: Int
    public var correct: Int
    public var bits: Data
    public var seconds: Double
    /// Set when the item failed on this attempt (then n = correct = 0, no bits).
    public var error: String?
    /// The mixture's mean pairwise FSD (absent for one member).
    public var meanFSD: Double?
    /// Fraction of the target adapter's weights whose sign the mixture flips.
    public var weightsChangingDirection: Double?

    enum CodingKeys: String, CodingKey {
        case key, n, correct, bits, seconds, error
        case meanFSD = "mean_fsd"
        case weightsChangingDirection = "weights_changing_direction"
    }

    public init(key: String, n: Int, correct: Int, bits: Data, seconds: Double, error: String? = nil,
                meanFSD: Double? = nil, weightsChangingDirection: Double? = nil) {
        self.key = key
        self.n = n
        self.correct = correct
        self.bits = bits
        self.seconds = seconds
        self.error = error
        self.meanFSD = meanFSD
        self.weightsChangingDirection = weightsChangingDirection
    }

    /// The wire form of an evaluator's outcome.
    public init(_ o: ItemOutcome) {
        if let error = o.error {
            self.init(key: o.key, n: 0, correct: 0, bits: Data(), seconds: o.seconds, error: error)
        } else {
            let bits = CorrectnessBits(o.correctness)
            self.init(key: o.key, n: bits.count, correct: bits.correctCount, bits: bits.bytes, seconds: o.seconds,
                      meanFSD: o.meanFSD, weightsChangingDirection: o.weightsChangingDirection)
        }
    }
}

/// worker → coordinator: the results of one shard attempt.
public struct ShardResult: Codable, Equatable, Sendable {
    public var shard: Int
    public var attempt: Int
    public var items: [ItemReport]
    /// Where the worker's time went on this shard (absent from peers that do not measure it).
    public var timing: ShardTiming?
    public init(shard: Int, attempt: Int, items: [ItemReport], timing: ShardTiming? = nil) {
        self.shard = shard
        self.attempt = attempt
        self.items = items
        self.timing = timing
    }
}

/// coordinator → worker: the answer to `hello`. Everything a worker needs to evaluate this sweep:
/// the configuration (canonical JSON, which `SweepConfig.parse` reads back), the artifact hashes the
/// plan was made with (the worker checks its own files against them), and the liveness settings.
public struct Welcome: Codable, Equatable, Sendable {
    public var config: String
    public var artifacts: ArtifactHashes
    /// Seconds between heartbeats, each way.
    public var heartbeatInterval: Double
    /// Heartbeats missed before the other side is presumed gone.
    public var liveness: Int

    enum CodingKeys: String, CodingKey {
        case config, artifacts
        case heartbeatInterval = "heartbeat_interval"
        case liveness
    }

    public init(config: String, artifacts: ArtifactHashes, heartbeatInterval: Double, liveness: Int) {
        self.config = config
        self.artifacts = artifacts
        self.heartbeatInterval = heartbeatInterval
        self.liveness = liveness
    }
}

/// worker → coordinator: `length` bytes from `offset` of the artifact whose SHA-256 is `sha256`.
public struct FetchRequest: Codable, Equatable, Sendable {
    public var sha256: String
    public var offset: Int
    public var length: Int
    public init(sha256: String, offset: Int, length: Int) {
        self.sha256 = sha256
        self.offset = offset
        self.length = length
    }
}

/// coordinator → worker: bytes `offset ..< offset + data.count` of an artifact of `total` bytes, or
/// why it cannot be sent.
public struct BlobChunk: Codable, Equatable, Sendable {
    public var sha256: String
    public var offset: Int
    public var total: Int
    public var data: Data
    public var error: String?
    public init(sha256: String, offset: Int, total: Int, data: Data, error: String? = nil) {
        self.sha256 = sha256
        self.offset = offset
        self.total = total
        self.data = data
        self.error = error
    }

    /// The largest chunk a coordinator sends (base64 in JSON stays well under the payload limit).
    public static let maxLength = 1 << 20
}

/// Why a peer is refused.
public enum RefuseCode: String, Codable, Sendable {
    case protocolVersion = "protocol-version"
    case planHash = "plan-hash"
    case sweepId = "sweep-id"
    case malformed
    case other
}

public struct Refusal: Codable, Equatable, Sendable {
    public var code: RefuseCode
    public var reason: String
    /// The refusing peer's protocol version, so the other side can log what was expected.
    public var version: Int
    public init(code: RefuseCode, reason: String, version: Int = Int(WireProtocol.version)) {
        self.code = code
        self.reason = reason
        self.version = version
    }
}

public struct Bye: Codable, Equatable, Sendable {
    public var reason: String
    /// From the coordinator: true when the sweep is complete (workers exit 0), false when the
    /// coordinator is stopping with work left (workers exit too; a resumed sweep needs new ones).
    public var finished: Bool?
    public init(reason: String, finished: Bool? = nil) {
        self.reason = reason
        self.finished = finished
    }
}

/// The body of a message; its case decides the kind.
public enum Payload: Equatable, Sendable {
    case hello(Hello)
    case ready(Ready)
    case work(WorkShard)
    case result(ShardResult)
    case heartbeat(sequence: UInt64)
    case refuse(Refusal)
    case bye(Bye)
    case welcome(Welcome)
    case fetch(FetchRequest)
    case blob(BlobChunk)

    public var kind: MessageKind {
        switch self {
        case .hello: return .hello
        case .ready: return .ready
        case .work: return .work
        case .result: return .result
        case .heartbeat: return .heartbeat
        case .refuse: return .refuse
        case .bye: return .bye
        case .welcome: return .welcome
        case .fetch: return .fetch
        case .blob: return .blob
        }
    }
}

// MARK: - Messages

/// One protocol message: `[header, kind, sweep id, plan hash, payload]`.
public struct WireMessage: Equatable, Sendable {
    public var sweepId: String
    public var planHash: PlanHash
    public var payload: Payload
    public var kind: MessageKind { payload.kind }

    public init(sweepId: String, planHash: PlanHash, payload: Payload) {
        self.sweepId = sweepId
        self.planHash = planHash
        self.payload = payload
    }

    // MARK: encode

    /// The five frames of this message. `version` is only overridden by tests that play an old peer.
    public func encode(version: UInt16 = WireProtocol.version) throws -> [Data] {
        var header = Data(WireProtocol.magic)
        header.append(UInt8(version >> 8))
        header.append(UInt8(version & 0xFF))
        header.append(contentsOf: [0, 0])

        try Self.validateSweepId(Data(sweepId.utf8))

        let encoding = kind.encoding
        let body: Data
        switch payload {
        case .hello(let p): body = try Self.json(p)
        case .ready(let p): body = try Self.json(p)
        case .work(let p): body = try Self.json(p)
        case .result(let p): body = try Self.json(p)
        case .refuse(let p): body = try Self.json(p)
        case .bye(let p): body = try Self.json(p)
        case .welcome(let p): body = try Self.json(p)
        case .fetch(let p): body = try Self.json(p)
        case .blob(let p): body = try Self.json(p)
        case .heartbeat(let seq):
            var b = Data(count: 8)
            for i in 0..<8 { b[i] = UInt8(truncatingIfNeeded: seq >> (8 * UInt64(7 - i))) }
            body = b
        }
        guard body.count <= WireProtocol.maxPayloadLength else {
            throw WireError.payloadTooLarge(declared: UInt32(clamping: body.count))
        }
        var payloadFrame = Data(capacity: WireProtocol.payloadPrefixLength + body.count)
        payloadFrame.append(encoding.rawValue)
        let n = UInt32(body.count)
        payloadFrame.append(contentsOf: [UInt8(n >> 24), UInt8((n >> 16) & 0xFF), UInt8((n >> 8) & 0xFF), UInt8(n & 0xFF)])
        payloadFrame.append(body)

        return [header, Data([kind.rawValue]), Data(sweepId.utf8), planHash.bytes, payloadFrame]
    }

    private static func json<T: Encodable>(_ value: T) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return try encoder.encode(value)
    }

    // MARK: decode

    /// Decodes the five frames a DEALER sent. Checks in frame order; the version is checked right
    /// after the magic, before anything whose layout a later version may change.
    public static func decode(_ frames: [Data]) throws -> WireMessage {
        guard frames.count == WireProtocol.frameCount else { throw WireError.wrongFrameCount(frames.count) }
        let header = [UInt8](frames[0])
        if header.count >= 6, Array(header[0..<4]) == WireProtocol.magic {
            let version = UInt16(header[4]) << 8 | UInt16(header[5])
            guard version == WireProtocol.version else { throw WireError.unsupportedVersion(version) }
        }
        guard header.count == WireProtocol.headerLength else { throw WireError.badHeaderLength(header.count) }
        guard Array(header[0..<4]) == WireProtocol.magic else { throw WireError.badMagic }
        let flags = UInt16(header[6]) << 8 | UInt16(header[7])
        guard flags == 0 else { throw WireError.badHeaderFlags(flags) }

        guard frames[1].count == 1, let rawKind = frames[1].first else { throw WireError.badKindFrame(length: frames[1].count) }
        guard let kind = MessageKind(rawValue: rawKind) else { throw WireError.unknownKind(rawKind) }

        let sweepId = try validateSweepId(frames[2])

        guard let planHash = PlanHash(bytes: frames[3]) else { throw WireError.badPlanHash(length: frames[3].count) }

        let p = [UInt8](frames[4])
        guard p.count >= WireProtocol.payloadPrefixLength else { throw WireError.payloadFrameTooShort(p.count) }
        guard let encoding = PayloadEncoding(rawValue: p[0]) else { throw WireError.unknownEncoding(p[0]) }
        guard encoding == kind.encoding else { throw WireError.wrongEncoding(kind: kind, encoding: p[0]) }
        let declared = UInt32(p[1]) << 24 | UInt32(p[2]) << 16 | UInt32(p[3]) << 8 | UInt32(p[4])
        guard Int(declared) <= WireProtocol.maxPayloadLength else { throw WireError.payloadTooLarge(declared: declared) }
        let actual = p.count - WireProtocol.payloadPrefixLength
        guard Int(declared) == actual else { throw WireError.payloadLengthMismatch(declared: declared, actual: actual) }
        let body = Data(p[WireProtocol.payloadPrefixLength...])

        let payload: Payload
        switch kind {
        case .hello:
            let h: Hello = try decodeJSON(body, kind)
            guard !h.worker.isEmpty, h.worker.utf8.count <= 256 else { throw WireError.badPayload(kind: kind, reason: "worker name must be 1...256 bytes") }
            guard h.threads >= 1 else { throw WireError.badPayload(kind: kind, reason: "threads must be ≥ 1") }
            payload = .hello(h)
        case .ready:
            let r: Ready = try decodeJSON(body, kind)
            guard r.credit >= 1 else { throw WireError.badPayload(kind: kind, reason: "credit must be ≥ 1") }
            payload = .ready(r)
        case .work:
            let w: WorkShard = try decodeJSON(body, kind)
            guard w.shard >= 0, w.attempt >= 1 else { throw WireError.badPayload(kind: kind, reason: "shard must be ≥ 0 and attempt ≥ 1") }
            guard w.items.allSatisfy({ $0.target == w.target }) else { throw WireError.badPayload(kind: kind, reason: "items of another target in the shard") }
            payload = .work(w)
        case .result:
            let r: ShardResult = try decodeJSON(body, kind)
            guard r.shard >= 0, r.attempt >= 1 else { throw WireError.badPayload(kind: kind, reason: "shard must be ≥ 0 and attempt ≥ 1") }
            for item in r.items {
                guard item.n >= 0, item.correct >= 0, item.correct <= item.n else {
                    throw WireError.badPayload(kind: kind, reason: "item \(item.key): need 0 ≤ correct ≤ n")
                }
                guard let bits = CorrectnessBits(count: item.n, bytes: item.bits) else {
                    throw WireError.badPayload(kind: kind, reason: "item \(item.key): \(item.bits.count) bit bytes for n = \(item.n)")
                }
                // `correct` is derivable from the bits (bits past n are zero): they must agree.
                guard bits.correctCount == item.correct else {
                    throw WireError.badPayload(kind: kind, reason: "item \(item.key): correct = \(item.correct) but \(bits.correctCount) bits are set")
                }
                guard item.seconds.isFinite, item.seconds >= 0 else { throw WireError.badPayload(kind: kind, reason: "item \(item.key): bad duration") }
            }
            payload = .result(r)
        case .heartbeat:
            guard body.count == 8 else { throw WireError.badPayload(kind: kind, reason: "heartbeat body is \(body.count) bytes, expected 8") }
            let seq = body.reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            payload = .heartbeat(sequence: seq)
        case .refuse:
            payload = .refuse(try decodeJSON(body, kind))
        case .bye:
            payload = .bye(try decodeJSON(body, kind))
        case .welcome:
            let w: Welcome = try decodeJSON(body, kind)
            guard w.heartbeatInterval.isFinite, w.heartbeatInterval > 0, w.liveness >= 1 else {
                throw WireError.badPayload(kind: kind, reason: "heartbeat interval must be > 0 and liveness ≥ 1")
            }
            payload = .welcome(w)
        case .fetch:
            let f: FetchRequest = try decodeJSON(body, kind)
            guard f.sha256.count == 64, f.offset >= 0, (1...BlobChunk.maxLength).contains(f.length) else {
                throw WireError.badPayload(kind: kind, reason: "need a 64-digit SHA-256, offset ≥ 0 and 1 ≤ length ≤ \(BlobChunk.maxLength)")
            }
            payload = .fetch(f)
        case .blob:
            let b: BlobChunk = try decodeJSON(body, kind)
            guard b.offset >= 0, b.total >= 0, b.offset + b.data.count <= b.total else {
                throw WireError.badPayload(kind: kind, reason: "chunk \(b.offset)+\(b.data.count) outside 0…\(b.total)")
            }
            payload = .blob(b)
        }
        return WireMessage(sweepId: sweepId, planHash: planHash, payload: payload)
    }

    /// Splits what a ROUTER received into the peer identity and the message, then decodes it.
    /// The identity is returned even when decoding fails, so the peer can be answered.
    public static func decodeRouted(_ frames: [Data]) -> (identity: Data?, result: Result<WireMessage, WireError>) {
        guard let identity = frames.first, !identity.isEmpty else { return (nil, .failure(.missingEnvelope)) }
        do {
            return (identity, .success(try decode(Array(frames.dropFirst()))))
        } catch let e as WireError {
            return (identity, .failure(e))
        } catch {
            return (identity, .failure(.badPayload(kind: .hello, reason: "\(error)")))
        }
    }

    @discardableResult
    private static func validateSweepId(_ raw: Data) throws -> String {
        guard !raw.isEmpty, raw.count <= WireProtocol.maxSweepIdLength else {
            throw WireError.badSweepId("length \(raw.count) not in 1...\(WireProtocol.maxSweepIdLength)")
        }
        guard let s = String(data: raw, encoding: .utf8) else { throw WireError.badSweepId("not UTF-8") }
        guard !s.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw WireError.badSweepId("contains control characters")
        }
        return s
    }

    private static func decodeJSON<T: Decodable>(_ body: Data, _ kind: MessageKind) throws -> T {
        do {
            return try JSONDecoder().decode(T.self, from: body)
        } catch {
            throw WireError.badPayload(kind: kind, reason: "invalid JSON for \(T.self)")
        }
    }
}

// MARK: - Admission

/// What a coordinator (or worker) expects of its peers: the same protocol version (checked by
/// `decode`), the same sweep id and the same plan hash.
public struct PeerPolicy: Sendable, Equatable {
    public let sweepId: String
    public let planHash: PlanHash

    public init(sweepId: String, planHash: PlanHash) {
        self.sweepId = sweepId
        self.planHash = planHash
    }

    /// nil when the message may proceed; otherwise the refusal to send back. A `hello` may say
    /// "any sweep" (sweep id `*` with plan hash all zeros) or "this plan, whatever its sweep id"
    /// (sweep id `*` with a plan hash): the worker learns the rest from `welcome`.
    public func check(_ message: WireMessage) -> Refusal? {
        let joining = message.kind == .hello && message.sweepId == WireProtocol.anySweep
        if joining && message.planHash.isUnknown { return nil }
        if message.planHash != planHash {
            return Refusal(code: .planHash, reason: "plan hash \(message.planHash.hex) does not match this sweep's \(planHash.hex)")
        }
        if message.sweepId != sweepId && !joining {
            return Refusal(code: .sweepId, reason: "sweep id \"\(message.sweepId)\" does not match this sweep's \"\(sweepId)\"")
        }
        return nil
    }

    /// The refusal for a message that could not be decoded.
    public func refusal(for error: WireError) -> Refusal {
        if case .unsupportedVersion = error {
            return Refusal(code: .protocolVersion, reason: error.description)
        }
        return Refusal(code: .malformed, reason: error.description)
    }

    /// A message from this side (our sweep id and plan hash).
    public func message(_ payload: Payload) -> WireMessage {
        WireMessage(sweepId: sweepId, planHash: planHash, payload: payload)
    }

    /// Answer for one routed message: `.accepted` or the `refuse` frames to send to the peer.
    public func admit(_ frames: [Data]) -> Admission {
        let (identity, result) = WireMessage.decodeRouted(frames)
        switch result {
        case .success(let m):
            if let r = check(m) { return .refused(identity: identity, refusal: r, error: nil) }
            return .accepted(identity: identity ?? Data(), message: m)
        case .failure(let e):
            return .refused(identity: identity, refusal: refusal(for: e), error: e)
        }
    }
}

/// The outcome of `PeerPolicy.admit`.
public enum Admission: Equatable, Sendable {
    case accepted(identity: Data, message: WireMessage)
    /// `identity` is nil only when the message had no routing frame (then nobody can be answered).
    case refused(identity: Data?, refusal: Refusal, error: WireError?)
}
