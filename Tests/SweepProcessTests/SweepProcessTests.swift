import Cluster
import Foundation
import Sweep
import XCTest

// Real processes on 127.0.0.1: `adaptermix sweep`, `coordinator` and `worker` as built by
// `swift build --build-tests`, on the tiny RoBERTa fixture with three packaged domains. Every
// run's per-item results are compared with one reference run.

/// One recorded item, as compared between runs.
struct Recorded: Equatable {
    var n: Int
    var correct: Int
    var bits: Data
    var meanFSD: Double?
    var wcd: Double?
}

enum Fixture {
    static let root: URL = {
        var dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while !FileManager.default.fileExists(atPath: dir.appendingPathComponent("Package.swift").path) {
            dir = dir.deletingLastPathComponent()
        }
        return dir
    }()

    static let binary: URL? = {
        let beside = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for dir in [beside, beside.deletingLastPathComponent(), root.appendingPathComponent(".build/debug")] {
            let u = dir.appendingPathComponent("adaptermix")
            if FileManager.default.isExecutableFile(atPath: u.path) { return u }
        }
        return nil
    }()

    static let dir: URL = {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("adaptermix-sweep-\(getpid())")
        try? FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        return d
    }()

    static let tiny = root.appendingPathComponent("Tests/EncoderTests/Fixtures/tiny-roberta").path
    static let domains = ["sms-spam", "election-tweets", "rotten-tomatoes"]

    /// The sweep config: 3 domains → 12 mixtures × (clean, fgsm) = 24 items in shards of 2.
    /// Adapters are trained by the first sweep (adapters.train) into the fixture folder.
    static let config: String = {
        let train = dir.appendingPathComponent("train.yaml")
        try! """
            epochs: 1
            batch_size: 16
            learning_rate: 0.005
            seed: 7
            max_length: 32
            max_train: 64
            max_validation: 16
            bottleneck: 8
            """.write(to: train, atomically: true, encoding: .utf8)
        let c = dir.appendingPathComponent("sweep.yaml")
        try! """
            base_model: \(tiny)
            domains: [\(domains.joined(separator: ", "))]
            adapters: {method: pfeiffer, dir: \(dir.appendingPathComponent("adapters").path), train: \(train.path)}
            mixing: {strategy: average}
            conditions: [clean, fgsm]
            test_cap: 24
            batch_size: 8
            shard_size: 2
            max_length: 32
            seed: 42
            """.write(to: c, atomically: true, encoding: .utf8)
        return c.path
    }()

    struct Run { var status: Int32; var stdout: String; var stderr: String }

    /// Runs the executable to completion; one that is still running after `timeout` seconds is
    /// killed (the run then reports signal 9), so a hang fails the test instead of stalling CI.
    static func run(_ args: [String], timeout: Double = 300) throws -> Run {
        guard let binary else { throw XCTSkip("adaptermix executable not built: run 'swift build --build-tests' (make test does)") }
        let p = Process()
        p.executableURL = binary
        p.arguments = args
        p.currentDirectoryURL = root
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let pid = p.processIdentifier
        let watchdog = DispatchWorkItem { kill(pid, SIGKILL) }
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: watchdog)
        defer { watchdog.cancel() }
        // Read both pipes concurrently so neither fills up.
        let errData = ResultData()
        let t = Thread { errData.data = err.fileHandleForReading.readDataToEndOfFile() }
        t.start()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        while !errData.done { Thread.sleep(forTimeInterval: 0.01) }
        return Run(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: errData.data, as: UTF8.self))
    }

    /// Starts a process whose output goes to `log` (read it with `text(of:)`).
    static func spawn(_ args: [String], log: URL) throws -> Process {
        guard let binary else { throw XCTSkip("adaptermix executable not built") }
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        let p = Process()
        p.executableURL = binary
        p.arguments = args
        p.currentDirectoryURL = root
        p.standardOutput = handle
        p.standardError = handle
        try p.run()
        return p
    }

    static func text(of url: URL) -> String { (try? String(contentsOf: url, encoding: .utf8)) ?? "" }

    static func recorded(_ journal: String) throws -> [String: Recorded] {
        let j = try Journal.open(path: journal)
        defer { try? j.close() }
        var out: [String: Recorded] = [:]
        for r in try j.results() {
            out[r.result.key] = Recorded(n: r.result.n, correct: r.result.correct, bits: r.result.bits.bytes,
                                         meanFSD: r.result.meanFSD, wcd: r.result.weightsChangingDirection)
        }
        return out
    }

    static func counts(_ journal: String) -> JournalCounts? {
        guard let j = try? Journal.open(path: journal) else { return nil }
        defer { try? j.close() }
        return try? j.counts()
    }

    struct Timeout: Error, CustomStringConvertible { var description: String }

    /// Polls `condition` until it holds; a failure (not a hang) after `seconds`.
    static func waitUntil(_ seconds: Double, _ what: String, _ condition: () -> Bool) throws {
        let deadline = Date().addingTimeInterval(seconds)
        while !condition() {
            if Date() > deadline {
                XCTFail("timed out after \(seconds) s waiting for \(what)")
                throw Timeout(description: "timed out waiting for \(what)")
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    /// Waits for a process to exit; after `seconds` it is killed and the test fails with `log`.
    static func finish(_ p: Process, within seconds: Double = 120, log: URL? = nil) throws {
        let deadline = Date().addingTimeInterval(seconds)
        while p.isRunning {
            if Date() > deadline {
                kill(p.processIdentifier, SIGKILL)
                p.waitUntilExit()
                XCTFail("\(p.arguments?.first ?? "process") did not finish within \(seconds) s\n" + (log.map(text(of:)) ?? ""))
                throw Timeout(description: "process did not finish")
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    /// The reference: one worker, a clean run (trains the three adapters first).
    static let reference: Result<[String: Recorded], Error> = Result {
        let journal = dir.appendingPathComponent("reference.sqlite").path
        let r = try run(["sweep", "--config", config, "--journal", journal, "--workers", "1", "--threads", "1",
                         "--heartbeat-interval", "0.2"])
        guard r.status == 0 else { throw NSError(domain: "reference sweep failed (\(r.status)): \(r.stderr)", code: 1) }
        return try recorded(journal)
    }

    static func referenceResults() throws -> [String: Recorded] {
        switch reference {
        case .success(let r): return r
        case .failure(let e): XCTFail("\(e)"); throw e
        }
    }

    static func freePort() -> Int {
        // Bind port 0 on loopback, read the port, close: good enough for a test on one machine.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}

final class ResultData: @unchecked Sendable {
    private let lock = NSLock()
    private var _data = Data()
    private var _done = false
    var data: Data {
        get { lock.lock(); defer { lock.unlock() }; return _data }
        set { lock.lock(); _data = newValue; _done = true; lock.unlock() }
    }
    var done: Bool { lock.lock(); defer { lock.unlock() }; return _done }
}

final class SweepProcessTests: XCTestCase {
    override func setUp() {
        continueAfterFailure = false
    }

    override class func tearDown() {
        try? FileManager.default.removeItem(at: Fixture.dir)
        super.tearDown()
    }

    func testOneAndThreeWorkersGiveBitIdenticalResults() throws {
        let reference = try Fixture.referenceResults()
        XCTAssertEqual(reference.count, 24)
        // The adapters were trained by the first sweep (adapters.train).
        for d in Fixture.domains {
            XCTAssertTrue(FileManager.default.fileExists(atPath: Fixture.dir.appendingPathComponent("adapters/\(d)-pfeiffer/adapter.safetensors").path))
        }
        let journal = Fixture.dir.appendingPathComponent("three.sqlite").path
        let r = try Fixture.run(["sweep", "--config", Fixture.config, "--journal", journal, "--workers", "3", "--threads", "1",
                                 "--heartbeat-interval", "0.2"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let three = try Fixture.recorded(journal)
        XCTAssertEqual(three, reference, "3 workers must give the same per-item results as 1")
        // Every item has 24 examples; mixtures of two or more carry an FSD figure.
        XCTAssertTrue(three.values.allSatisfy { $0.n == 24 })
        XCTAssertEqual(three.values.filter { $0.meanFSD != nil }.count, 18)
        // The printed table has every target and both conditions.
        for d in Fixture.domains { XCTAssertTrue(r.stdout.contains("target \(d)"), r.stdout) }
        XCTAssertTrue(r.stdout.contains("fgsm") && r.stdout.contains("drop clean k=1 → k=3"), r.stdout)
        XCTAssertTrue(r.stdout.contains("recomputed from the journal agree (18 cells)"), r.stdout)

        // status --format json: the documented shape, and the same numbers as the journal.
        let s = try Fixture.run(["status", "--journal", journal, "--format", "json"])
        XCTAssertEqual(s.status, 0, s.stderr)
        let obj = try JSONSerialization.jsonObject(with: Data(s.stdout.utf8)) as! [String: Any]
        XCTAssertEqual(obj["total"] as? Int, 24)
        XCTAssertEqual(obj["done"] as? Int, 24)
        XCTAssertEqual(obj["failed"] as? Int, 0)
        XCTAssertEqual(obj["results"] as? Int, 24)
        // The coordinator's own note: finished, with the endpoint it served on 127.0.0.1.
        let note = try XCTUnwrap(obj["coordinator"] as? [String: Any], s.stdout)
        XCTAssertEqual(note["finished"] as? Bool, true)
        XCTAssertTrue((note["endpoint"] as? String ?? "").hasPrefix("tcp://127.0.0.1:"))
        let text = try Fixture.run(["status", "--journal", journal])
        XCTAssertTrue(text.stdout.contains("24 / 24 items recorded") && text.stdout.contains("finished"), text.stdout)
        let aggregates = obj["aggregates"] as! [[String: Any]]
        XCTAssertEqual(aggregates.count, 3 * 3 * 2)
        let cell = aggregates.first { $0["target"] as? String == "sms-spam" && $0["k"] as? Int == 2 && $0["condition"] as? String == "clean" }!
        XCTAssertEqual(cell["count"] as? Int, 2)
        let table = try AggregateTable(journal: Journal.open(path: journal))
        let stats = table.cells[AggregateKey(target: "sms-spam", k: 2, condition: .clean)]!
        XCTAssertEqual(cell["mean"] as? Double, stats.mean)
        XCTAssertEqual(cell["variance"] as? Double, stats.variance)
        for key in ["min", "max"] { XCTAssertNotNil(cell[key] as? Double) }

        // The k = 1 clean accuracy is what `adaptermix eval` reports for the adapter alone.
        let e = try Fixture.run(["eval", "--model", Fixture.tiny, "--adapter", Fixture.dir.appendingPathComponent("adapters/sms-spam-pfeiffer").path,
                                 "--domain", "sms-spam", "--max-test", "24", "--max-length", "32", "--format", "json"])
        XCTAssertEqual(e.status, 0, e.stderr)
        let single = try JSONSerialization.jsonObject(with: Data(e.stdout.utf8)) as! [String: Any]
        XCTAssertEqual(single["accuracy"] as? Double, table.cells[AggregateKey(target: "sms-spam", k: 1, condition: .clean)]?.mean)

        // Running the finished sweep again resumes it: nothing to do, same table.
        let again = try Fixture.run(["sweep", "--config", Fixture.config, "--journal", journal, "--workers", "1", "--heartbeat-interval", "0.2"])
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertTrue(again.stderr.contains("24 recorded, 0 to do"), again.stderr)
        XCTAssertEqual(try Fixture.recorded(journal), reference)
    }

    func testKilledWorkersDoNotLoseOrDuplicateResults() throws {
        let reference = try Fixture.referenceResults()
        let journal = Fixture.dir.appendingPathComponent("worker-kill.sqlite").path
        let endpoint = "tcp://127.0.0.1:\(Fixture.freePort())"
        let coordinatorLog = Fixture.dir.appendingPathComponent("worker-kill-coordinator.log")
        let coordinator = try Fixture.spawn(["coordinator", "--config", Fixture.config, "--journal", journal, "--bind", endpoint,
                                             "--heartbeat-interval", "0.2", "--max-attempts", "10"], log: coordinatorLog)
        defer { if coordinator.isRunning { coordinator.terminate() } }
        var workers: [Process] = []
        var spawned = 0
        func startWorker() throws {
            spawned += 1
            workers.append(try Fixture.spawn(["worker", "--connect", endpoint, "--threads", "1", "--delay-ms", "150", "--give-up", "30",
                                              "--name", "w\(spawned)"],
                                             log: Fixture.dir.appendingPathComponent("worker-kill-w\(spawned).log")))
        }
        try startWorker()
        try startWorker()
        defer { for w in workers where w.isRunning { w.terminate() } }
        // Kill a random worker at several points of the sweep, starting a new one each time.
        var generator = SystemRandomNumberGenerator()
        var kills = 0
        for threshold in [2, 6, 10, 14] {
            try Fixture.waitUntil(60, "\(threshold) results") { (Fixture.counts(journal)?.done ?? 0) >= threshold || !coordinator.isRunning }
            guard coordinator.isRunning else { break }
            Thread.sleep(forTimeInterval: Double.random(in: 0...0.2, using: &generator))
            let live = workers.filter(\.isRunning)
            guard let victim = live.randomElement(using: &generator) else { break }
            kill(victim.processIdentifier, SIGKILL)
            victim.waitUntilExit()
            kills += 1
            try startWorker()
        }
        try Fixture.finish(coordinator, log: coordinatorLog)
        XCTAssertEqual(coordinator.terminationStatus, 0, Fixture.text(of: coordinatorLog))
        XCTAssertGreaterThanOrEqual(kills, 2)
        let counts = try XCTUnwrap(Fixture.counts(journal))
        XCTAssertEqual(counts.done, 24)
        XCTAssertEqual(counts.failed, 0)
        XCTAssertEqual(try Fixture.recorded(journal), reference, "results after worker kills equal the clean run")
    }

    func testKilledCoordinatorResumesWithoutReevaluatingRecordedItems() throws {
        let reference = try Fixture.referenceResults()
        let journal = Fixture.dir.appendingPathComponent("coordinator-kill.sqlite").path
        let endpoint = "tcp://127.0.0.1:\(Fixture.freePort())"
        let log1 = Fixture.dir.appendingPathComponent("coordinator-kill-1.log")
        let first = try Fixture.spawn(["coordinator", "--config", Fixture.config, "--journal", journal, "--bind", endpoint,
                                       "--heartbeat-interval", "0.2"], log: log1)
        var workers: [Process] = []
        for i in 1...2 {
            workers.append(try Fixture.spawn(["worker", "--connect", endpoint, "--threads", "1", "--delay-ms", "200", "--give-up", "30",
                                              "--name", "r\(i)"], log: Fixture.dir.appendingPathComponent("coordinator-kill-w\(i).log")))
        }
        defer { for w in workers where w.isRunning { w.terminate() } }
        try Fixture.waitUntil(60, "some results") { (Fixture.counts(journal)?.done ?? 0) >= 6 }
        kill(first.processIdentifier, SIGKILL)
        first.waitUntilExit()
        let before = try Fixture.recorded(journal)
        XCTAssertGreaterThanOrEqual(before.count, 6)
        XCTAssertLessThan(before.count, 24, "the kill should land mid-sweep")

        // Resume on the same endpoint; the workers reconnect by themselves.
        let log2 = Fixture.dir.appendingPathComponent("coordinator-kill-2.log")
        let second = try Fixture.spawn(["coordinator", "--config", Fixture.config, "--journal", journal, "--bind", endpoint, "--resume",
                                        "--heartbeat-interval", "0.2"], log: log2)
        try Fixture.finish(second, log: log2)
        XCTAssertEqual(second.terminationStatus, 0, Fixture.text(of: log2))
        XCTAssertTrue(Fixture.text(of: log2).contains("\(before.count) recorded, \(24 - before.count) to do"), Fixture.text(of: log2))
        let after = try Fixture.recorded(journal)
        XCTAssertEqual(after, reference, "the resumed sweep's table equals the clean run")
        // Rows recorded before the kill were not evaluated again: same worker, attempt and duration.
        let j = try Journal.open(path: journal)
        var rows: [String: StoredResult] = [:]
        for r in try j.results() { rows[r.result.key] = r }
        XCTAssertEqual(rows.count, 24, "one row per item")
        let snapshot = Dictionary(uniqueKeysWithValues: try j.results().map { ($0.result.key, $0) })
        for key in before.keys { XCTAssertEqual(snapshot[key], rows[key]) }
        XCTAssertEqual(try j.counts().duplicatesDropped, 0)
        for w in workers { try Fixture.finish(w, within: 30) }
        XCTAssertTrue(workers.allSatisfy { $0.terminationStatus == 0 })
    }

    /// SIGTERM (what Slurm's --signal sends before a time limit): the coordinator writes what it has,
    /// tells the workers, exits 130; they exit 0; the same command resumes and completes.
    func testSIGTERMStopsGracefullyAndTheSweepResumes() throws {
        let reference = try Fixture.referenceResults()
        let journal = Fixture.dir.appendingPathComponent("sigterm.sqlite").path
        let endpoint = "tcp://127.0.0.1:\(Fixture.freePort())"
        let log = Fixture.dir.appendingPathComponent("sigterm-coordinator.log")
        let args = ["coordinator", "--config", Fixture.config, "--journal", journal, "--bind", endpoint, "--heartbeat-interval", "0.2"]
        let first = try Fixture.spawn(args, log: log)
        let wlog = Fixture.dir.appendingPathComponent("sigterm-worker.log")
        let worker = try Fixture.spawn(["worker", "--connect", endpoint, "--threads", "1", "--delay-ms", "200", "--give-up", "30"], log: wlog)
        defer { if worker.isRunning { worker.terminate() } }
        try Fixture.waitUntil(60, "some results") { (Fixture.counts(journal)?.done ?? 0) >= 4 }
        kill(first.processIdentifier, SIGTERM)
        try Fixture.finish(first, within: 30, log: log)
        XCTAssertEqual(first.terminationStatus, 130, Fixture.text(of: log))
        try Fixture.finish(worker, within: 30, log: wlog)
        XCTAssertEqual(worker.terminationStatus, 0, Fixture.text(of: wlog))
        XCTAssertTrue(Fixture.text(of: wlog).contains("coordinator stopping"), Fixture.text(of: wlog))
        let stopped = try XCTUnwrap(Fixture.counts(journal))
        XCTAssertGreaterThanOrEqual(stopped.done, 4)
        XCTAssertLessThan(stopped.done, 24)
        XCTAssertEqual(stopped.resultRows, stopped.done)

        let second = try Fixture.spawn(args + ["--resume"], log: Fixture.dir.appendingPathComponent("sigterm-coordinator-2.log"))
        let again = try Fixture.run(["worker", "--connect", endpoint, "--threads", "1", "--give-up", "30"], timeout: 120)
        XCTAssertEqual(again.status, 0, again.stderr)
        try Fixture.finish(second, within: 60)
        XCTAssertEqual(second.terminationStatus, 0)
        XCTAssertEqual(try Fixture.recorded(journal), reference)
    }

    func testLateResultFromAPresumedDeadWorkerCountsOnce() throws {
        let reference = try Fixture.referenceResults()
        let journal = Fixture.dir.appendingPathComponent("late.sqlite").path
        let endpoint = "tcp://127.0.0.1:\(Fixture.freePort())"
        let log = Fixture.dir.appendingPathComponent("late-coordinator.log")
        let coordinator = try Fixture.spawn(["coordinator", "--config", Fixture.config, "--journal", journal, "--bind", endpoint,
                                             "--heartbeat-interval", "0.2", "--liveness", "3"], log: log)
        defer { if coordinator.isRunning { coordinator.terminate() } }
        // A takes a shard, then freezes (SIGSTOP) past its expiry; B gets the shard again.
        let a = try Fixture.spawn(["worker", "--connect", endpoint, "--threads", "1", "--delay-ms", "800", "--prefetch", "0", "--name", "frozen"],
                                  log: Fixture.dir.appendingPathComponent("late-a.log"))
        try Fixture.waitUntil(30, "A to hold a shard") { Fixture.text(of: log).contains("frozen") && (Fixture.counts(journal)?.running ?? 0) > 0 }
        Thread.sleep(forTimeInterval: 0.2)
        kill(a.processIdentifier, SIGSTOP)
        let b = try Fixture.spawn(["worker", "--connect", endpoint, "--threads", "1", "--delay-ms", "300", "--name", "steady"],
                                  log: Fixture.dir.appendingPathComponent("late-b.log"))
        try Fixture.waitUntil(30, "A presumed dead") { Fixture.text(of: log).contains("presumed dead") }
        Thread.sleep(forTimeInterval: 0.5)
        kill(a.processIdentifier, SIGCONT)
        try Fixture.finish(coordinator, log: log)
        try Fixture.finish(a, within: 30)
        try Fixture.finish(b, within: 30)
        let text = Fixture.text(of: log)
        XCTAssertEqual(coordinator.terminationStatus, 0, text)
        XCTAssertEqual(try Fixture.recorded(journal), reference)
        // The frozen worker's result came late: recorded once, or dropped as a duplicate.
        let summary = text.split(separator: "\n").first { $0.contains("late results") }.map(String.init) ?? ""
        let late = Int(summary.components(separatedBy: " late results").first?.split(separator: " ").last ?? "") ?? 0
        let dups = Int(summary.components(separatedBy: " duplicate results dropped").first?.split(separator: " ").last ?? "") ?? 0
        XCTAssertGreaterThanOrEqual(late + dups, 1, text)
        XCTAssertEqual(Fixture.counts(journal)?.done, 24)
    }

    func testMalformedFramesAreDroppedAndTheSweepCompletes() throws {
        let reference = try Fixture.referenceResults()
        let journal = Fixture.dir.appendingPathComponent("fuzz.sqlite").path
        let port = Fixture.freePort()
        let endpoint = "tcp://127.0.0.1:\(port)"
        let log = Fixture.dir.appendingPathComponent("fuzz-coordinator.log")
        let coordinator = try Fixture.spawn(["coordinator", "--config", Fixture.config, "--journal", journal, "--bind", endpoint,
                                             "--heartbeat-interval", "0.2"], log: log)
        defer { if coordinator.isRunning { coordinator.terminate() } }
        let worker = try Fixture.spawn(["worker", "--connect", endpoint, "--threads", "1", "--delay-ms", "100", "--name", "honest"],
                                       log: Fixture.dir.appendingPathComponent("fuzz-worker.log"))
        defer { if worker.isRunning { worker.terminate() } }
        // Fuzz while the sweep runs: once the first results are in.
        try Fixture.waitUntil(60, "the sweep to start") { (Fixture.counts(journal)?.done ?? 0) >= 2 }

        let context = try ZMQContext()
        let fuzzer = try ZMQSocket(context, .dealer)
        try fuzzer.connect(endpoint)
        var generator = SystemRandomNumberGenerator()
        let valid = try WireMessage(sweepId: "*", planHash: .unknown, payload: .hello(Hello(worker: "fuzzer", pid: 1, threads: 1))).encode()
        var sent = 0
        for round in 0..<60 {
            var frames: [Data]
            switch round % 6 {
            case 0: frames = (0..<Int.random(in: 1...7, using: &generator)).map { _ in Data((0..<Int.random(in: 0...40, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }) }
            case 1: frames = Array(valid.prefix(3))                               // wrong frame count
            case 2: frames = valid; frames[0] = frames[0].prefix(5)                // truncated header
            case 3: frames = valid; frames[4] = Data([1, 0xFF, 0xFF, 0xFF, 0xF0]) + Data("{}".utf8)  // absurd length field
            case 4: frames = valid; frames[3] = Data(repeating: 7, count: 32)      // another plan hash
            default: frames = valid; frames[1] = Data([99])                        // unknown kind
            }
            if try fuzzer.send(frames, timeout: 1) { sent += 1 }
            if round % 10 == 0 { Thread.sleep(forTimeInterval: 0.05) }
        }
        // Raw bytes that are not ZMTP at all.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = UInt16(port).bigEndian
        if withUnsafePointer(to: &addr, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }) == 0 {
            let junk = [UInt8]("GET / HTTP/1.0\r\n\r\n".utf8) + (0..<256).map { _ in UInt8.random(in: 0...255, using: &generator) }
            _ = junk.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        }
        close(fd)
        try fuzzer.setLinger(2000)  // deliver everything queued before closing
        fuzzer.close()

        try Fixture.finish(coordinator, log: log)
        let text = Fixture.text(of: log)
        XCTAssertEqual(coordinator.terminationStatus, 0, text)
        XCTAssertGreaterThan(sent, 50)
        XCTAssertTrue(text.contains("refused a message"), text)
        XCTAssertTrue(text.contains("messages refused") && !text.contains(" 0 messages refused"), text)
        XCTAssertEqual(try Fixture.recorded(journal), reference)
    }

    func testOtherPlanHashAndProtocolVersionAreRefusedWithAReason() throws {
        _ = try Fixture.referenceResults()  // the adapters exist
        let journal = Fixture.dir.appendingPathComponent("refuse.sqlite").path
        let endpoint = "tcp://127.0.0.1:\(Fixture.freePort())"
        let log = Fixture.dir.appendingPathComponent("refuse-coordinator.log")
        let coordinator = try Fixture.spawn(["coordinator", "--config", Fixture.config, "--journal", journal, "--bind", endpoint,
                                             "--heartbeat-interval", "0.2"], log: log)
        defer { if coordinator.isRunning { coordinator.terminate() } }

        // A worker pinned to another plan: refused, exits 2 naming the plan hash.
        let other = String(repeating: "ab", count: 32)
        let w = try Fixture.run(["worker", "--connect", endpoint, "--plan-hash", other, "--give-up", "20"])
        XCTAssertEqual(w.status, 2, w.stderr)
        XCTAssertTrue(w.stderr.contains("plan hash") && w.stderr.contains(other), w.stderr)

        // A peer speaking protocol version 2 gets a refusal saying which version we speak.
        let context = try ZMQContext()
        let peer = try ZMQSocket(context, .dealer)
        try peer.connect(endpoint)
        let hello = WireMessage(sweepId: "*", planHash: .unknown, payload: .hello(Hello(worker: "future", pid: 2, threads: 1)))
        XCTAssertTrue(try peer.send(hello.encode(version: 2), timeout: 5))
        let answer = try XCTUnwrap(try peer.receive(timeout: 10), "no answer to a version-2 hello")
        guard case .refuse(let refusal) = try WireMessage.decode(answer).payload else { return XCTFail("expected a refusal") }
        XCTAssertEqual(refusal.code, .protocolVersion)
        XCTAssertTrue(refusal.reason.contains("version 2") && refusal.reason.contains("speaks 1"), refusal.reason)
        peer.close()

        // The coordinator carries on: an honest worker finishes the sweep.
        let ok = try Fixture.run(["worker", "--connect", endpoint, "--threads", "1", "--give-up", "30"])
        XCTAssertEqual(ok.status, 0, ok.stderr)
        try Fixture.finish(coordinator, log: log)
        XCTAssertEqual(coordinator.terminationStatus, 0, Fixture.text(of: log))
        XCTAssertTrue(Fixture.text(of: log).contains("plan-hash"), Fixture.text(of: log))
    }

    func testNoopEvaluatorAndConfigErrors() throws {
        // The no-op evaluator needs no adapters: the machinery alone.
        let journal = Fixture.dir.appendingPathComponent("noop.sqlite").path
        let r = try Fixture.run(["sweep", "--config", Fixture.config, "--journal", journal, "--workers", "2", "--evaluator", "noop",
                                 "--heartbeat-interval", "0.2", "--format", "json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let obj = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        XCTAssertEqual(obj["done"] as? Int, 24)
        let recorded = try Fixture.recorded(journal)
        for (key, rec) in recorded {
            XCTAssertEqual(rec.bits, CorrectnessBits(NoopEvaluator.correctness(key: key, examples: 64)).bytes)
        }
        // A mixture journal cannot be resumed with the no-op plan (different plan hash).
        let mismatch = try Fixture.run(["sweep", "--config", Fixture.config, "--journal", journal, "--workers", "1"])
        XCTAssertNotEqual(mismatch.status, 0)
        XCTAssertTrue(mismatch.stderr.contains("plan") && mismatch.stderr.contains(journal), mismatch.stderr)

        // Config errors: one clear line before anything starts.
        let bad = Fixture.dir.appendingPathComponent("bad.yaml")
        try "base_model: x\ndomains: [sms-spam, nowhere]\nadapters: {method: pfeiffer, dir: /nonexistent}\n".write(to: bad, atomically: true, encoding: .utf8)
        let e = try Fixture.run(["sweep", "--config", bad.path, "--workers", "1"])
        XCTAssertNotEqual(e.status, 0)
        XCTAssertTrue(e.stderr.contains("bad.yaml") && e.stderr.contains("nowhere"), e.stderr)
        let missing = try Fixture.run(["coordinator", "--config", Fixture.config, "--journal", Fixture.dir.appendingPathComponent("none.sqlite").path,
                                       "--bind", "tcp://127.0.0.1:*", "--resume"])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.stderr.contains("no journal to resume"), missing.stderr)
    }

    /// cluster/soak.sh in a short form: 6 domains (192 items) with the no-op evaluator, 3 workers,
    /// a worker SIGKILLed every second (four times) and the coordinator once; every item recorded once and the
    /// aggregates equal an uninterrupted run's (the script checks and says so).
    func testFaultSoakShortForm() throws {
        guard let binary = Fixture.binary else { throw XCTSkip("adaptermix executable not built") }
        let config = Fixture.dir.appendingPathComponent("soak.yaml")
        try """
            base_model: \(Fixture.tiny)
            domains: [sms-spam, election-tweets, rotten-tomatoes, bbc-news, boolq, privacy-qa]
            adapters: {method: pfeiffer, dir: /nonexistent}
            conditions: [clean]
            shard_size: 4
            """.write(to: config, atomically: true, encoding: .utf8)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = [Fixture.root.appendingPathComponent("cluster/soak.sh").path]
        var env = ProcessInfo.processInfo.environment
        env["BIN"] = binary.path
        env["CONFIG"] = config.path
        env["WORKERS"] = "3"
        env["DELAY_MS"] = "150"
        env["KILL_EVERY"] = "1"
        env["MAX_WORKER_KILLS"] = "4"
        env["COORDINATOR_KILLS"] = "1"
        env["OUT"] = Fixture.dir.appendingPathComponent("soak").path
        env["TIMEOUT"] = "180"
        p.environment = env
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, text)
        // Kills happen every second until the sweep ends: how many fit depends on the machine's speed
        // (3 or 4 here); at least 2 worker kills and the coordinator kill must have happened.
        let kills = text.range(of: #"(\d+) worker kills and 1 coordinator kills survived"#, options: .regularExpression)
            .flatMap { Int(text[$0].prefix { $0.isNumber }) } ?? 0
        XCTAssertGreaterThanOrEqual(kills, 2, text)
        XCTAssertTrue(text.contains("192 items, each recorded once (192 result rows)") && text.contains("aggregates equal"), text)
    }
}

/// CURVE on loopback: the coordinator on 127.0.0.2 stands in for a head node.
final class CurveProcessTests: XCTestCase {
    func testListedKeyAcceptedUnknownKeyAndPlaintextRefusedWithoutHanging() throws {
        let keys = Fixture.dir.appendingPathComponent("curve-keys")
        try? FileManager.default.removeItem(at: keys)
        let g = try Fixture.run(["keys", "generate", "--out", keys.path, "--workers", "1"])
        XCTAssertEqual(g.status, 0, g.stderr)
        let s = try Fixture.run(["keys", "generate", "--out", keys.appendingPathComponent("extra").path, "--name", "stranger"])
        XCTAssertEqual(s.status, 0, s.stderr)
        let config = Fixture.dir.appendingPathComponent("curve.yaml")
        try "base_model: x\ndomains: [sms-spam, election-tweets, rotten-tomatoes]\nadapters: {method: pfeiffer, dir: /nonexistent}\nshard_size: 2\n"
            .write(to: config, atomically: true, encoding: .utf8)
        let endpointFile = Fixture.dir.appendingPathComponent("curve-endpoint")
        let log = Fixture.dir.appendingPathComponent("curve-coordinator.log")
        let coordinator = try Fixture.spawn(["coordinator", "--config", config.path, "--evaluator", "noop",
                                             "--journal", Fixture.dir.appendingPathComponent("curve.sqlite").path,
                                             "--bind", "tcp://127.0.0.2:*", "--endpoint-file", endpointFile.path,
                                             "--curve", keys.path, "--heartbeat-interval", "0.2"], log: log)
        defer { if coordinator.isRunning { coordinator.terminate() } }
        try Fixture.waitUntil(60, "the coordinator to bind") { FileManager.default.fileExists(atPath: endpointFile.path) }
        let endpoint = Fixture.text(of: endpointFile).trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertTrue(endpoint.hasPrefix("tcp://127.0.0.2:"), endpoint)
        let server = keys.appendingPathComponent("coordinator.pub").path

        // An unknown key: refused at the handshake, the worker says so and exits (no retry loop).
        let start = Date()
        let unknown = try Fixture.run(["worker", "--connect", endpoint, "--curve-key", keys.appendingPathComponent("extra/stranger.key").path,
                                       "--server-key", server, "--give-up", "60"], timeout: 60)
        XCTAssertEqual(unknown.status, 1, unknown.stderr)
        XCTAssertTrue(unknown.stderr.contains("refused this worker's CURVE key") && unknown.stderr.contains("authorized"), unknown.stderr)
        // A plaintext worker: the mechanisms differ.
        let plain = try Fixture.run(["worker", "--connect", endpoint, "--give-up", "60"], timeout: 60)
        XCTAssertEqual(plain.status, 1, plain.stderr)
        XCTAssertTrue(plain.stderr.contains("different security mechanisms") && plain.stderr.contains("--curve-key"), plain.stderr)
        XCTAssertLessThan(Date().timeIntervalSince(start), 30, "refusals are immediate, not a timeout")

        // The listed worker does the sweep.
        let ok = try Fixture.run(["worker", "--connect", endpoint, "--curve-key", keys.appendingPathComponent("workers/worker-1.key").path,
                                  "--server-key", server, "--give-up", "60"], timeout: 120)
        XCTAssertEqual(ok.status, 0, ok.stderr)
        try Fixture.finish(coordinator, log: log)
        XCTAssertEqual(coordinator.terminationStatus, 0, Fixture.text(of: log))
        let text = Fixture.text(of: log)
        XCTAssertTrue(text.contains("refused a CURVE handshake") && text.contains("is not in"), text)
        // The plaintext attempt shows as a failed handshake too (which side notices the mismatch
        // first varies: "different security mechanisms" or a broken pipe).
        XCTAssertGreaterThanOrEqual(text.components(separatedBy: "failed its handshake").count - 1, 2, text)

        // A non-loopback bind needs --curve or --insecure (checked before anything binds).
        let open = try Fixture.run(["coordinator", "--config", config.path, "--evaluator", "noop", "--journal",
                                    Fixture.dir.appendingPathComponent("open.sqlite").path, "--bind", "tcp://0.0.0.0:7"])
        XCTAssertNotEqual(open.status, 0)
        XCTAssertTrue(open.stderr.contains("--insecure") && open.stderr.contains("--curve"), open.stderr)
    }
}

/// Workers without a shared filesystem: artifacts by SHA-256 over the sweep's connection.
final class ArtifactFetchTests: XCTestCase {
    /// Runs a coordinator on the fixture config and one worker with `workerArgs`; returns the
    /// journal, the worker's exit status and its log.
    func sweep(_ name: String, workerArgs: [String]) throws -> (journal: String, status: Int32, log: String) {
        let journal = Fixture.dir.appendingPathComponent("\(name).sqlite").path
        let endpointFile = Fixture.dir.appendingPathComponent("\(name)-endpoint")
        let log = Fixture.dir.appendingPathComponent("\(name)-coordinator.log")
        let coordinator = try Fixture.spawn(["coordinator", "--config", Fixture.config, "--journal", journal, "--bind", "tcp://127.0.0.3:*",
                                             "--endpoint-file", endpointFile.path, "--heartbeat-interval", "0.2"], log: log)
        defer { if coordinator.isRunning { coordinator.terminate() } }
        try Fixture.waitUntil(60, "the coordinator to bind") { FileManager.default.fileExists(atPath: endpointFile.path) }
        let endpoint = Fixture.text(of: endpointFile).trimmingCharacters(in: .whitespacesAndNewlines)
        let w = try Fixture.run(["worker", "--connect", endpoint, "--threads", "1", "--give-up", "60"] + workerArgs, timeout: 180)
        if w.status == 0 {
            try Fixture.finish(coordinator, log: log)
            XCTAssertEqual(coordinator.terminationStatus, 0, Fixture.text(of: log))
        }
        return (journal, w.status, w.stderr)
    }

    func testEmptyCacheFetchesEverythingAndACorruptedBlobIsFetchedAgain() throws {
        let reference = try Fixture.referenceResults()
        let cache = Fixture.dir.appendingPathComponent("fetch-cache")
        try? FileManager.default.removeItem(at: cache)

        // 1. An empty cache, no use of local paths: everything comes over the connection.
        let first = try sweep("fetch-1", workerArgs: ["--assets", "fetch", "--cache", cache.path])
        XCTAssertEqual(first.status, 0, first.log)
        XCTAssertEqual(try Fixture.recorded(first.journal), reference)
        let blobs = cache.appendingPathComponent("blobs")
        let files = try FileManager.default.subpathsOfDirectory(atPath: blobs.path).filter { $0.count > 60 && !$0.contains(".part") }
        // model.safetensors, config.json, tokenizer.json, 3 adapters × 4 files, 3 test splits.
        XCTAssertEqual(files.count, 3 + 12 + 3, files.description)
        XCTAssertEqual(first.log.components(separatedBy: "fetched artifact").count - 1, 18, first.log)

        // 2. Corrupt one cached blob: detected, fetched again, same results.
        let victim = blobs.appendingPathComponent(files.sorted()[0])
        var bytes = try Data(contentsOf: victim)
        bytes[bytes.count / 2] ^= 0xFF
        try bytes.write(to: victim)
        let second = try sweep("fetch-2", workerArgs: ["--assets", "fetch", "--cache", cache.path])
        XCTAssertEqual(second.status, 0, second.log)
        XCTAssertTrue(second.log.contains("corrupted; fetching it again"), second.log)
        XCTAssertEqual(second.log.components(separatedBy: "fetched artifact").count - 1, 1, second.log)
        XCTAssertEqual(try Fixture.recorded(second.journal), reference)

        // 3. A shared assets folder whose bytes differ is refused, naming the file.
        let shared = Fixture.dir.appendingPathComponent("fetch-shared")
        try? FileManager.default.removeItem(at: shared)
        try FileManager.default.copyItem(at: blobs, to: shared)
        let bad = shared.appendingPathComponent(files.sorted()[1])
        try Data("not the bytes".utf8).write(to: bad)
        let third = try sweep("fetch-3", workerArgs: ["--assets", shared.path, "--cache", Fixture.dir.appendingPathComponent("fetch-cache-3").path])
        XCTAssertEqual(third.status, 1, third.log)
        XCTAssertTrue(third.log.contains(bad.lastPathComponent) && third.log.contains("refusing"), third.log)
    }
}

