import Foundation
import GRDB

/// Per-example correctness, packed 8 to a byte, least significant bit first (example i is bit
/// i % 8 of byte i / 8). Kept so paired tests and bootstrap intervals are possible later.
public struct CorrectnessBits: Sendable, Equatable, Hashable {
    public let count: Int
    public let bytes: Data

    public init(_ values: [Bool]) {
        var b = [UInt8](repeating: 0, count: (values.count + 7) / 8)
        for (i, v) in values.enumerated() where v { b[i >> 3] |= UInt8(1) << UInt8(i & 7) }
        count = values.count
        bytes = Data(b)
    }

    /// nil unless there are exactly ⌈count/8⌉ bytes and no bit past `count` is set.
    public init?(count: Int, bytes: Data) {
        guard count >= 0, bytes.count == (count + 7) / 8 else { return nil }
        if count % 8 != 0, let last = bytes.last, last >> UInt8(count % 8) != 0 { return nil }
        self.count = count
        self.bytes = bytes
    }

    public subscript(i: Int) -> Bool {
        precondition(i >= 0 && i < count)
        return bytes[bytes.startIndex + (i >> 3)] & (UInt8(1) << UInt8(i & 7)) != 0
    }

    public var values: [Bool] { (0..<count).map { self[$0] } }
    /// Bits beyond `count` are always zero, so this is a popcount of the bytes.
    public var correctCount: Int { bytes.reduce(0) { $0 + $1.nonzeroBitCount } }
}

/// One evaluated work item as a worker reports it.
public struct ItemResult: Sendable, Equatable {
    public var key: String
    public var n: Int
    public var correct: Int
    public var bits: CorrectnessBits
    /// The mixture's mean FSD over member pairs (nil for a single member or when not computed).
    public var meanFSD: Double?
    /// Fraction of the target adapter's weights whose sign the mixture flips (nil when not computed).
    public var weightsChangingDirection: Double?
    public var worker: String
    public var attempt: Int
    /// Seconds spent evaluating.
    public var duration: Double

    public init(key: String, n: Int, correct: Int, bits: CorrectnessBits, meanFSD: Double? = nil,
                weightsChangingDirection: Double? = nil, worker: String, attempt: Int, duration: Double) {
        self.key = key
        self.n = n
        self.correct = correct
        self.bits = bits
        self.meanFSD = meanFSD
        self.weightsChangingDirection = weightsChangingDirection
        self.worker = worker
        self.attempt = attempt
        self.duration = duration
    }

    /// Builds a result from the per-example bits (n and correct follow from them).
    public init(key: String, correctness: [Bool], meanFSD: Double? = nil, weightsChangingDirection: Double? = nil,
                worker: String, attempt: Int, duration: Double) {
        let bits = CorrectnessBits(correctness)
        self.init(key: key, n: bits.count, correct: bits.correctCount, bits: bits, meanFSD: meanFSD,
                  weightsChangingDirection: weightsChangingDirection, worker: worker, attempt: attempt, duration: duration)
    }

    public var accuracy: Double { n == 0 ? 0 : Double(correct) / Double(n) }
}

public enum ItemState: String, Sendable, Codable, CaseIterable {
    case pending, running, done, failed
}

/// An item row of the journal.
public struct JournalItem: Sendable, Equatable {
    public let key: String
    public let target: String
    public let members: [String]
    public let k: Int
    public let condition: SweepCondition
    public let state: ItemState
    public let attempts: Int
    public let reason: String?
    /// Which experiment the item belongs to, and its strategy parameters (empty for exhaustive items).
    public var experiment: Experiment = .exhaustive
    public var parameters: [String: Double] = [:]
}

/// A recorded result with the item facts aggregation needs.
public struct StoredResult: Sendable, Equatable {
    public let target: String
    public let k: Int
    public let condition: SweepCondition
    public let result: ItemResult
    public var members: [String] = []
    public var experiment: Experiment = .exhaustive
    public var parameters: [String: Double] = [:]
}

public struct RecordOutcome: Sendable, Equatable {
    /// Results newly recorded.
    public var recorded = 0
    /// Results for keys already recorded (or repeated within the batch): dropped, counted.
    public var duplicates = 0
    /// Results whose key is not in the plan: dropped.
    public var unknown = 0
    /// The newly recorded results, in the order given (for incremental aggregation).
    public var newlyRecorded: [String] = []
}

public struct JournalCounts: Sendable, Equatable, Codable {
    public var total = 0
    public var pending = 0
    public var running = 0
    public var done = 0
    public var failed = 0
    /// Duplicate results dropped over the journal's life.
    public var duplicatesDropped = 0
    /// Rows in the results table (equals `done`: one row per recorded item).
    public var resultRows = 0
}

/// What `Journal.progress` reads.
public struct JournalProgress: Sendable, Equatable {
    public var coordinatorPID: Int?
    public var endpoint: String?
    public var liveWorkers: Int?
    public var secondsSinceCoordinatorNote: Double?
    public var coordinatorFinished: Bool?
    public var runStartedAt: Double?
    /// Items recorded per second over the window (0 when fewer than two).
    public var rate: Double = 0

    public init() {}
}

public enum JournalError: Error, CustomStringConvertible, Equatable {
    case planHashMismatch(path: String, journal: String, plan: String)
    case notAJournal(path: String, reason: String)
    case unknownKey(String)

    public var description: String {
        switch self {
        case let .planHashMismatch(path, journal, plan):
            return "\(path): journal was written for plan \(journal), but this config and its artifacts give plan \(plan)"
        case let .notAJournal(path, reason): return "\(path): not a sweep journal (\(reason))"
        case let .unknownKey(k): return "no work item with key \(k)"
        }
    }
}

/// The sweep journal: SQLite in WAL mode, one row per work key, each result recorded once.
///
/// Why GRDB rather than raw libsqlite3: `DatabasePool` gives WAL mode with concurrent readers and
/// one serialised writer out of the box (a `status` reader never blocks the coordinator's writes),
/// typed, `Sendable` access that satisfies Swift 6 strict concurrency without a hand-written lock
/// around an `OpaquePointer`, prepared-statement caching for the batched inserts, and transactions
/// that roll back on a thrown error — all code we would otherwise write and test ourselves. It
/// builds on Linux with the system SQLite and keeps SQLite out of the numeric core.
public final class Journal: Sendable {
    public let path: String
    public let sweepID: String
    public let planHash: String
    private let pool: DatabasePool

    private init(path: String, pool: DatabasePool) throws {
        self.path = path
        self.pool = pool
        let row = try pool.read { db -> Row? in
            guard try db.tableExists("sweep") else { return nil }
            return try Row.fetchOne(db, sql: "SELECT id, plan_hash FROM sweep LIMIT 1")
        }
        guard let row else { throw JournalError.notAJournal(path: path, reason: "no sweep row") }
        sweepID = row["id"]
        planHash = row["plan_hash"]
    }

    private static func makePool(_ path: String) throws -> DatabasePool {
        var config = Configuration()
        config.busyMode = .timeout(10)
        // WAL with synchronous = NORMAL: a killed process loses no committed transaction and the
        // file stays consistent; only a power loss may drop the last few commits (they are then
        // simply pending again and re-evaluated — results are deterministic).
        config.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = NORMAL") }
        let pool = try DatabasePool(path: path, configuration: config)
        try pool.write { db in
            try db.execute(sql: """
                CREATE TABLE IF NOT EXISTS sweep (
                    id TEXT PRIMARY KEY NOT NULL,
                    plan_hash TEXT NOT NULL,
                    config_json TEXT NOT NULL,
                    created TEXT NOT NULL,
                    duplicates_dropped INTEGER NOT NULL DEFAULT 0
                );
                CREATE TABLE IF NOT EXISTS items (
                    seq INTEGER PRIMARY KEY,
                    key TEXT NOT NULL UNIQUE,
                    target TEXT NOT NULL,
                    members TEXT NOT NULL,
                    k INTEGER NOT NULL,
                    condition TEXT NOT NULL,
                    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending','running','done','failed')),
                    attempts INTEGER NOT NULL DEFAULT 0,
                    reason TEXT
                );
                CREATE INDEX IF NOT EXISTS items_state ON items(state);
                CREATE TABLE IF NOT EXISTS results (
                    key TEXT PRIMARY KEY NOT NULL REFERENCES items(key),
                    n INTEGER NOT NULL,
                    correct INTEGER NOT NULL,
                    bits BLOB NOT NULL,
                    mean_fsd REAL,
                    weights_changing_direction REAL,
                    worker TEXT NOT NULL,
                    attempt INTEGER NOT NULL,
                    duration REAL NOT NULL,
                    recorded_at REAL
                );
                CREATE TABLE IF NOT EXISTS coordinator (
                    id INTEGER PRIMARY KEY CHECK (id = 1),
                    pid INTEGER NOT NULL,
                    endpoint TEXT NOT NULL,
                    started_at REAL NOT NULL,
                    updated_at REAL NOT NULL,
                    live_workers INTEGER NOT NULL,
                    finished INTEGER NOT NULL DEFAULT 0
                );
                """)
            // Journals written before `recorded_at` existed get the column (their rows stay null).
            let columns = try Row.fetchAll(db, sql: "PRAGMA table_info(results)").map { $0["name"] as String }
            if !columns.contains("recorded_at") { try db.execute(sql: "ALTER TABLE results ADD COLUMN recorded_at REAL") }
            // Journals written before experiments existed: every item is an exhaustive one.
            let itemColumns = try Row.fetchAll(db, sql: "PRAGMA table_info(items)").map { $0["name"] as String }
            if !itemColumns.contains("experiment") {
                try db.execute(sql: "ALTER TABLE items ADD COLUMN experiment TEXT NOT NULL DEFAULT 'exhaustive'")
                try db.execute(sql: "ALTER TABLE items ADD COLUMN params TEXT NOT NULL DEFAULT ''")
            }
            // The domains' centroid similarity, written with the plan when the similarity experiment needs it.
            try db.execute(sql: """
                CREATE TABLE IF NOT EXISTS similarity (
                    a TEXT NOT NULL,
                    b TEXT NOT NULL,
                    value REAL NOT NULL,
                    PRIMARY KEY (a, b)
                )
                """)
            // LDA topics of the domains (model = a domain, or "*" for all the domains' documents).
            try db.execute(sql: """
                CREATE TABLE IF NOT EXISTS topics (model TEXT NOT NULL, topic INTEGER NOT NULL, words TEXT NOT NULL, PRIMARY KEY (model, topic));
                CREATE TABLE IF NOT EXISTS topic_mixtures (model TEXT NOT NULL, domain TEXT NOT NULL, topic INTEGER NOT NULL, weight REAL NOT NULL,
                                                           PRIMARY KEY (model, domain, topic));
                """)
            // The adapters' pairwise FSD, written with the plan (the report's heatmap and greedy mixing).
            try db.execute(sql: """
                CREATE TABLE IF NOT EXISTS fsd (
                    a TEXT NOT NULL,
                    b TEXT NOT NULL,
                    value REAL NOT NULL,
                    PRIMARY KEY (a, b)
                )
                """)
        }
        return pool
    }

    /// Creates the journal for `plan` at `path`, or reopens it if it already holds this plan
    /// (reopening a journal of another plan throws `planHashMismatch` naming both hashes). On
    /// creation every work item is inserted as pending, in plan order, in one transaction.
    public static func create(path: String, plan: SweepPlan, sweepID: String? = nil) throws -> Journal {
        let pool = try makePool(path)
        try pool.write { db in
            if let existing = try String.fetchOne(db, sql: "SELECT plan_hash FROM sweep LIMIT 1") {
                guard existing == plan.hash else {
                    throw JournalError.planHashMismatch(path: path, journal: existing, plan: plan.hash)
                }
                return
            }
            let id = sweepID ?? String(plan.hash.prefix(16))
            let created = ISO8601DateFormatter().string(from: Date())
            try db.execute(sql: "INSERT INTO sweep (id, plan_hash, config_json, created) VALUES (?, ?, ?, ?)",
                           arguments: [id, plan.hash, plan.config.canonicalJSON(), created])
            let insert = try db.makeStatement(sql: """
                INSERT OR IGNORE INTO items (key, target, members, k, condition, experiment, params) VALUES (?, ?, ?, ?, ?, ?, ?)
                """)
            for t in plan.targets {
                for item in plan.items(for: t) {
                    try insert.execute(arguments: [item.key, item.target, item.members.joined(separator: ","),
                                                   item.k, item.condition.rawValue, item.experiment.rawValue,
                                                   Self.paramsText(item.recipe?.parameters ?? [:])])
                }
            }
            if let topics = plan.topics {
                let t = try db.makeStatement(sql: "INSERT OR REPLACE INTO topics (model, topic, words) VALUES (?, ?, ?)")
                let m = try db.makeStatement(sql: "INSERT OR REPLACE INTO topic_mixtures (model, domain, topic, weight) VALUES (?, ?, ?, ?)")
                for p in topics.perDomain {
                    for (k, words) in p.topics.enumerated() { try t.execute(arguments: [p.domain, k, words.joined(separator: " ")]) }
                    for (k, w) in p.mixture.enumerated() { try m.execute(arguments: [p.domain, p.domain, k, w]) }
                }
                for (k, words) in topics.unionTopics.enumerated() { try t.execute(arguments: ["*", k, words.joined(separator: " ")]) }
                for (d, mix) in topics.unionMixtures { for (k, w) in mix.enumerated() { try m.execute(arguments: ["*", d, k, w]) } }
            }
            for (table, t) in [("fsd", plan.fsd.map { ($0.domains, $0.matrix) }), ("similarity", plan.similarity.map { ($0.domains, $0.matrix) })] {
                guard let (domains, matrix) = t else { continue }
                let row = try db.makeStatement(sql: "INSERT OR REPLACE INTO \(table) (a, b, value) VALUES (?, ?, ?)")
                for (i, a) in domains.enumerated() {
                    for (j, b) in domains.enumerated() where matrix[i][j].isFinite { try row.execute(arguments: [a, b, matrix[i][j]]) }
                }
            }
        }
        return try Journal(path: path, pool: pool)
    }

    /// Opens an existing journal; with `planHash`, verifies it (mismatch names both hashes).
    public static func open(path: String, planHash: String? = nil) throws -> Journal {
        guard FileManager.default.fileExists(atPath: path) else {
            throw JournalError.notAJournal(path: path, reason: "no such file")
        }
        let journal = try Journal(path: path, pool: makePool(path))
        if let planHash, planHash != journal.planHash {
            throw JournalError.planHashMismatch(path: path, journal: journal.planHash, plan: planHash)
        }
        return journal
    }

    /// Closes the database (further calls throw).
    public func close() throws { try pool.close() }

    /// The config JSON stored at creation.
    public func configJSON() throws -> String {
        try pool.read { db in try String.fetchOne(db, sql: "SELECT config_json FROM sweep LIMIT 1") ?? "" }
    }

    /// Strategy parameters as stored: `name=value` pairs, sorted, comma-separated.
    static func paramsText(_ p: [String: Double]) -> String {
        p.keys.sorted().map { "\($0)=\(p[$0]!.description)" }.joined(separator: ",")
    }

    static func parseParams(_ text: String?) -> [String: Double] {
        var out: [String: Double] = [:]
        for pair in (text ?? "").split(separator: ",") {
            let kv = pair.split(separator: "=", maxSplits: 1)
            if kv.count == 2, let v = Double(kv[1]) { out[String(kv[0])] = v }
        }
        return out
    }

    private static func item(_ row: Row) -> JournalItem {
        let members: String = row["members"]
        var item = JournalItem(key: row["key"], target: row["target"], members: members.split(separator: ",").map(String.init),
                               k: row["k"], condition: SweepCondition(rawValue: row["condition"]) ?? .clean,
                               state: ItemState(rawValue: row["state"]) ?? .pending, attempts: row["attempts"],
                               reason: row["reason"])
        item.experiment = Experiment(rawValue: row["experiment"] ?? "exhaustive") ?? .exhaustive
        item.parameters = parseParams(row["params"])
        return item
    }

    /// The adapters' pairwise FSD recorded with the plan (nil when none was).
    public func fsdTable() throws -> FSDTable? {
        try matrix("fsd")
    }

    /// The LDA topics recorded with the plan (nil when none were).
    public func topicSummary() throws -> TopicSummary? {
        try pool.read { db in
            let rows = try Row.fetchAll(db, sql: "SELECT model, topic, words FROM topics ORDER BY model, topic")
            guard !rows.isEmpty else { return nil }
            let mixRows = try Row.fetchAll(db, sql: "SELECT model, domain, topic, weight FROM topic_mixtures ORDER BY model, domain, topic")
            var words: [String: [[String]]] = [:]
            for r in rows { words[r["model"] as String, default: []].append((r["words"] as String).split(separator: " ").map(String.init)) }
            var mix: [String: [String: [Double]]] = [:]
            for r in mixRows { mix[r["model"] as String, default: [:]][r["domain"] as String, default: []].append(r["weight"]) }
            let per = words.keys.filter { $0 != "*" }.sorted().map { d in
                TopicSummary.DomainTopics(domain: d, topics: words[d]!, mixture: mix[d]?[d] ?? [])
            }
            return TopicSummary(perDomain: per, unionTopics: words["*"] ?? [], unionMixtures: mix["*"] ?? [:])
        }
    }

    /// The domains' centroid similarity recorded with the plan (nil when none was).
    public func similarityTable() throws -> SimilarityTable? {
        try matrix("similarity")
    }

    private func matrix(_ table: String) throws -> DomainMatrix? {
        try pool.read { db in
            let rows = try Row.fetchAll(db, sql: "SELECT a, b, value FROM \(table)")
            guard !rows.isEmpty else { return nil }
            let domains = Array(Set(rows.map { $0["a"] as String })).sorted()
            var m = [[Double]](repeating: [Double](repeating: .nan, count: domains.count), count: domains.count)
            let index = Dictionary(uniqueKeysWithValues: domains.enumerated().map { ($1, $0) })
            for r in rows {
                if let i = index[r["a"] as String], let j = index[r["b"] as String] { m[i][j] = r["value"] }
            }
            return DomainMatrix(domains: domains, matrix: m)
        }
    }

    /// Items not yet done or failed, in plan order. Items left `running` by an interrupted run
    /// count as pending: they were never recorded.
    public func pendingItems() throws -> [JournalItem] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM items WHERE state IN ('pending','running') ORDER BY seq").map(Self.item)
        }
    }

    /// The keys of every item without a recorded result (pending, running or failed): what a
    /// resumed sweep queues. Failed items get another round of attempts.
    public func unrecordedKeys() throws -> Set<String> {
        try pool.read { db in Set(try String.fetchAll(db, sql: "SELECT key FROM items WHERE state != 'done'")) }
    }

    /// Every item, in plan order.
    public func allItems() throws -> [JournalItem] {
        try pool.read { db in try Row.fetchAll(db, sql: "SELECT * FROM items ORDER BY seq").map(Self.item) }
    }

    /// Marks items dispatched: state running, attempts + 1 (done items are left alone; a failed
    /// item dispatched again by a resumed sweep runs again).
    public func markRunning(keys: [String]) throws {
        try pool.write { db in try Self.markRunning(db, keys) }
    }

    private static func markRunning(_ db: Database, _ keys: [String]) throws {
        let st = try db.makeStatement(sql: "UPDATE items SET state = 'running', attempts = attempts + 1 WHERE key = ? AND state != 'done'")
        for k in keys { try st.execute(arguments: [k]) }
    }

    private static func markFailed(_ db: Database, _ failed: [(key: String, reason: String)]) throws {
        let st = try db.makeStatement(sql: "UPDATE items SET state = 'failed', reason = ? WHERE key = ? AND state != 'done'")
        for f in failed { try st.execute(arguments: [f.reason, f.key]) }
    }

    /// One transaction for what a coordinator gathered since its last write: items dispatched
    /// (`running`), results (recorded as `record(results:)` does: first wins, duplicates counted),
    /// and items given up on. Nothing is half-written: a kill leaves the journal before or after it.
    @discardableResult
    public func commit(running: [String], results: [ItemResult], failed: [(key: String, reason: String)]) throws -> RecordOutcome {
        try pool.write { db in
            try Self.markRunning(db, running)
            let out = try Self.record(db, results)
            try Self.markFailed(db, failed)
            return out
        }
    }

    /// Marks an item failed with its reason (a recorded item stays done).
    public func markFailed(key: String, reason: String) throws {
        try pool.write { db in
            try db.execute(sql: "UPDATE items SET state = 'failed', reason = ? WHERE key = ? AND state != 'done'",
                           arguments: [reason, key])
            if db.changesCount == 0, try Int.fetchOne(db, sql: "SELECT 1 FROM items WHERE key = ?", arguments: [key]) == nil {
                throw JournalError.unknownKey(key)
            }
        }
    }

    /// Records a batch of results in one transaction. Idempotent: the first result for a key is
    /// kept; later ones (in this batch or any other) are dropped and counted. A result for a key
    /// outside the plan is dropped and counted as unknown. A failed item that later gets a valid
    /// result becomes done.
    @discardableResult
    public func record(results: [ItemResult]) throws -> RecordOutcome {
        try pool.write { db in try Self.record(db, results) }
    }

    private static func record(_ db: Database, _ results: [ItemResult]) throws -> RecordOutcome {
            var out = RecordOutcome()
            let now = Date().timeIntervalSince1970
            // One statement per result on the common path: the insert only happens for a planned key.
            let insert = try db.makeStatement(sql: """
                INSERT OR IGNORE INTO results (key, n, correct, bits, mean_fsd, weights_changing_direction, worker, attempt, duration, recorded_at)
                SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM items WHERE key = ?)
                """)
            let done = try db.makeStatement(sql: "UPDATE items SET state = 'done', reason = NULL WHERE key = ?")
            let exists = try db.makeStatement(sql: "SELECT 1 FROM items WHERE key = ?")
            for r in results {
                try insert.execute(arguments: [r.key, r.n, r.correct, r.bits.bytes, r.meanFSD, r.weightsChangingDirection,
                                               r.worker, r.attempt, r.duration, now, r.key])
                if db.changesCount == 1 {
                    try done.execute(arguments: [r.key])
                    out.recorded += 1
                    out.newlyRecorded.append(r.key)
                } else if try Int.fetchOne(exists, arguments: [r.key]) != nil {
                    out.duplicates += 1
                } else {
                    out.unknown += 1
                }
            }
            if out.duplicates > 0 {
                try db.execute(sql: "UPDATE sweep SET duplicates_dropped = duplicates_dropped + ?", arguments: [out.duplicates])
            }
            return out
    }

    public func counts() throws -> JournalCounts {
        try pool.read { db in
            var c = JournalCounts()
            for row in try Row.fetchAll(db, sql: "SELECT state, COUNT(*) AS n FROM items GROUP BY state") {
                let n: Int = row["n"]
                switch ItemState(rawValue: row["state"]) {
                case .pending: c.pending = n
                case .running: c.running = n
                case .done: c.done = n
                case .failed: c.failed = n
                case nil: break
                }
            }
            c.total = c.pending + c.running + c.done + c.failed
            c.duplicatesDropped = try Int.fetchOne(db, sql: "SELECT duplicates_dropped FROM sweep LIMIT 1") ?? 0
            c.resultRows = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM results") ?? 0
            return c
        }
    }

    private static func stored(_ row: Row) -> StoredResult {
        let n: Int = row["n"]
        let bytes: Data = row["bits"]
        let bits = CorrectnessBits(count: n, bytes: bytes) ?? CorrectnessBits([])
        let result = ItemResult(key: row["key"], n: n, correct: row["correct"], bits: bits, meanFSD: row["mean_fsd"],
                                weightsChangingDirection: row["weights_changing_direction"], worker: row["worker"],
                                attempt: row["attempt"], duration: row["duration"])
        let members: String = row["members"]
        return StoredResult(target: row["target"], k: row["k"], condition: SweepCondition(rawValue: row["condition"]) ?? .clean,
                            result: result, members: members.split(separator: ",").map(String.init),
                            experiment: Experiment(rawValue: row["experiment"] ?? "exhaustive") ?? .exhaustive,
                            parameters: parseParams(row["params"]))
    }

    /// Every recorded result with its item's target, k, condition, members and experiment, in plan
    /// order; with `experiment`, only that experiment's.
    public func results(experiment: Experiment? = nil) throws -> [StoredResult] {
        try pool.read { db in
            let filter = experiment.map { "WHERE i.experiment = '\($0.rawValue)'" } ?? ""
            return try Row.fetchAll(db, sql: """
                SELECT r.*, i.target, i.k, i.condition, i.members, i.experiment, i.params FROM results r JOIN items i ON i.key = r.key \(filter) ORDER BY i.seq
                """).map(Self.stored)
        }
    }

    /// The result recorded for one key, if any.
    public func result(forKey key: String) throws -> StoredResult? {
        try pool.read { db in
            try Row.fetchOne(db, sql: """
                SELECT r.*, i.target, i.k, i.condition, i.members, i.experiment, i.params FROM results r JOIN items i ON i.key = r.key WHERE r.key = ?
                """, arguments: [key]).map(Self.stored)
        }
    }

    /// What the running (or last) coordinator wrote about itself: refreshed with every journal write
    /// and at least every few seconds, so `status` can tell a live sweep from a stopped one.
    public func noteCoordinator(pid: Int, endpoint: String, startedAt: Double, liveWorkers: Int, finished: Bool) throws {
        try pool.write { db in
            try db.execute(sql: """
                INSERT INTO coordinator (id, pid, endpoint, started_at, updated_at, live_workers, finished) VALUES (1, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(id) DO UPDATE SET pid = excluded.pid, endpoint = excluded.endpoint, started_at = excluded.started_at,
                    updated_at = excluded.updated_at, live_workers = excluded.live_workers, finished = excluded.finished
                """, arguments: [pid, endpoint, startedAt, Date().timeIntervalSince1970, liveWorkers, finished ? 1 : 0])
        }
    }

    /// Progress as the journal knows it: the coordinator's last note and the recording rate over
    /// the last `window` seconds.
    public func progress(window: Double = 60) throws -> JournalProgress {
        try pool.read { db in
            var p = JournalProgress()
            let now = Date().timeIntervalSince1970
            if let row = try Row.fetchOne(db, sql: "SELECT * FROM coordinator WHERE id = 1") {
                p.coordinatorPID = row["pid"]
                p.endpoint = row["endpoint"]
                p.liveWorkers = row["live_workers"]
                p.secondsSinceCoordinatorNote = now - (row["updated_at"] as Double)
                p.coordinatorFinished = (row["finished"] as Int) != 0
                p.runStartedAt = row["started_at"]
            }
            let since = now - window
            let recent = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM results WHERE recorded_at >= ?", arguments: [since]) ?? 0
            if let first = try Double.fetchOne(db, sql: "SELECT MIN(recorded_at) FROM results WHERE recorded_at >= ?", arguments: [since]),
               recent > 1 {
                p.rate = Double(recent) / max(now - min(first, now), 1e-3)
            } else {
                p.rate = 0
            }
            return p
        }
    }

    /// The journal's SQLite journal mode (expected: "wal").
    public func journalMode() throws -> String {
        try pool.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") ?? "" }
    }
}
