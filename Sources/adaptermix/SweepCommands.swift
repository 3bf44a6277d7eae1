import Adapters
import ArgumentParser
import Cluster
import Datasets
import Encoder
import Foundation
import Sweep

// `sweep`, `coordinator`, `worker` and `status`: the evaluation sweep over every mixture
// (docs/sweep.md).

/// Options shared by `sweep` and `coordinator`.
struct SweepPlanOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Sweep config (YAML, see configs/demo-sweep.yaml).", valueName: "FILE"))
    var config: String

    @Option(help: ArgumentHelp("mixture (merge and evaluate for real) or noop (fixed results instantly: measures the machinery alone).", valueName: "NAME"))
    var evaluator: String = "mixture"

    @Option(name: .customLong("heartbeat-interval"), help: "Seconds between heartbeats, each way (default \(Dispatcher.heartbeatInterval)).")
    var heartbeatInterval: Double = Dispatcher.heartbeatInterval

    @Option(help: "Heartbeats missed before a worker is presumed dead (default \(Dispatcher.liveness)).")
    var liveness: Int = Dispatcher.liveness

    @Option(name: .customLong("max-attempts"), help: "Attempts per shard before its items are marked failed (default \(Dispatcher.maxAttempts)).")
    var maxAttempts: Int = Dispatcher.maxAttempts

    @Option(name: .customLong("progress-interval"), help: "Seconds between progress lines (0: none).")
    var progressInterval: Double = 10

    @Option(name: .customLong("train-threads"), help: "Threads for training missing adapters (default: all cores).")
    var trainThreads: Int = ProcessInfo.processInfo.activeProcessorCount

    func validate() throws {
        guard ["mixture", "noop"].contains(evaluator) else { throw ValidationError("--evaluator must be mixture or noop") }
        guard heartbeatInterval.isFinite, heartbeatInterval >= 0.01, heartbeatInterval <= 60 else {
            throw ValidationError("--heartbeat-interval must be between 0.01 and 60 seconds")
        }
        guard (1...100).contains(liveness) else { throw ValidationError("--liveness must be 1…100") }
        guard (1...100).contains(maxAttempts) else { throw ValidationError("--max-attempts must be 1…100") }
        guard trainThreads >= 1 else { throw ValidationError("--train-threads must be at least 1") }
    }

    var settings: CoordinatorSettings {
        var s = CoordinatorSettings()
        s.heartbeatInterval = heartbeatInterval
        s.liveness = liveness
        s.maxAttempts = maxAttempts
        s.progressInterval = progressInterval
        return s
    }

    /// The settings with a progress bar when standard error is a terminal (redrawn twice a second),
    /// periodic log lines otherwise.
    func settings(bar: TerminalProgress?) -> CoordinatorSettings {
        var s = settings
        if let bar, progressInterval > 0 {
            s.progressInterval = 0.5
            s.onProgress = { bar.draw($0) }
        }
        return s
    }

    /// Reads the config, checks domains and artifacts (training missing adapters when the config
    /// says how), hashes everything and makes the plan. Nothing starts before this succeeds.
    func makePlan(log: (String) -> Void) throws -> SweepPlan {
        let config = try SweepConfig.load(path: self.config)
        let catalog = try DomainCatalog(assets: PretrainedEncoder.assetsDirectory(),
                                        userFile: config.datasets.map { URL(fileURLWithPath: $0) })
        try config.checkDomains(known: Set(catalog.domains.map(\.name)), configFile: self.config)
        if evaluator == "noop" {
            return try SweepPlan(config: config, artifacts: .noop(domains: config.domains))
        }
        try trainMissingAdapters(config, log: log)
        try config.checkArtifactsExist(configFile: self.config)
        log("hashing the base model, \(config.domains.count) adapters and test splits…")
        let artifacts = try ArtifactHashes.compute(for: config, catalog: catalog)
        // The adapters' pairwise FSD: recorded in the journal for the report, ranked by greedy mixing.
        let fsd = try DomainMatrix.signDifference(config: config)
        var similarity: SimilarityTable?
        var documents: [[String]] = []
        if let spec = config.experiments.blocks["similarity"] {
            let sample = Int(spec.parameters["sample"] ?? 1000)
            log("embedding \(sample) training documents per domain for the domains' similarity…")
            documents = try config.sortedDomains.map { try DomainMatrix.sampleDocuments($0, catalog: catalog, sample: sample, seed: config.seed) }
            similarity = try DomainMatrix.centroidSimilarity(domains: config.sortedDomains, documents: documents)
        }
        var plan = try SweepPlan(config: config, artifacts: artifacts, fsd: fsd, similarity: similarity)
        if similarity != nil {
            // LDA topics of the same sample (the report's topic tables); deterministic for the seed.
            log("fitting LDA topics (10 per model, 200 sweeps) per domain and over all domains…")
            plan.topics = TopicSummary.fit(domains: config.sortedDomains, documents: documents, topics: 10, iterations: 200, seed: config.seed, words: 10)
        }
        // Tokens per test example, for sizing and ordering shards by cost (never changes a result).
        let tokenizer = try Tokenizer.load(contentsOf: URL(fileURLWithPath: config.baseModel).appendingPathComponent("tokenizer.json"))
        var estimates: [String: Double] = [:]
        for d in config.sortedDomains {
            let test = try catalog.load(d, options: SplitOptions(seed: config.seed, maxTest: config.testCap(for: d))).test
            let total = try test.reduce(0) { $0 + (try tokenizer.encode($1.text, pair: $1.textPair, maxLength: config.maxLength).count) }
            estimates[d] = Double(total) / Double(max(test.count, 1))
        }
        plan.tokenEstimates = estimates
        return plan
    }

    /// With `adapters.train` set, trains (one process at a time) each adapter folder that is missing.
    func trainMissingAdapters(_ config: SweepConfig, log: (String) -> Void) throws {
        let fm = FileManager.default
        let missing = config.sortedDomains.filter { !fm.fileExists(atPath: (config.adapterFolder(for: $0) as NSString).appendingPathComponent("adapter_config.json")) }
        guard !missing.isEmpty else { return }
        guard let trainConfig = config.trainConfig else {
            throw CLIError("\(self.config): adapters.dir: no adapter for \(missing.joined(separator: ", ")) in \(config.adapterDir) — train them ('adaptermix train'), or set adapters.train to a training config so the sweep trains what is missing")
        }
        for (i, domain) in missing.enumerated() {
            let folder = config.adapterFolder(for: domain)
            log("training adapter \(i + 1)/\(missing.count): \(domain) · \(config.adapterMethod.rawValue) → \(folder) (\(trainConfig))")
            var args = ["train", "--model", config.baseModel, "--domain", domain, "--method", config.adapterMethod.rawValue,
                        "--config", trainConfig, "--out", folder, "--seed", String(config.seed),
                        "--threads", String(trainThreads), "--quiet"]
            if let d = config.datasets { args += ["--datasets", d] }
            let status = try runSelf(args, quietStdout: true)
            guard status == 0 else { throw CLIError("training the \(domain) adapter failed (exit \(status)); see the lines above") }
        }
    }
}

/// Runs this executable with `args`, waiting for it; stderr passes through.
func runSelf(_ args: [String], quietStdout: Bool = false) throws -> Int32 {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/proc/self/exe")
    p.arguments = args
    if quietStdout { p.standardOutput = FileHandle.nullDevice }
    try p.run()
    p.waitUntilExit()
    return p.terminationStatus
}

/// Opens the journal for `plan` (creating it, or reopening the same sweep). `resume` insists the
/// journal already exists.
func openJournal(_ path: String, plan: SweepPlan, resume: Bool) throws -> Journal {
    let exists = FileManager.default.fileExists(atPath: path)
    if resume && !exists { throw CLIError("\(path): no journal to resume (drop --resume to start a new sweep)") }
    let dir = (path as NSString).deletingLastPathComponent
    if !dir.isEmpty { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
    do {
        return try Journal.create(path: path, plan: plan)
    } catch let e as JournalError {
        if case .planHashMismatch = e {
            throw CLIError("\(e) — the config or an artifact (base model, adapter, test split) changed since the journal was written; use a new --journal for a new sweep")
        }
        throw CLIError(e.description)
    }
}

/// One line per message on standard error, with a prefix and a wall-clock time. On a terminal a
/// progress bar stays on the last line (`TerminalProgress`); log lines print above it.
func stderrLogger(_ prefix: String, bar: TerminalProgress? = nil) -> @Sendable (String) -> Void {
    { line in
        let f = DateFormatter()
        f.dateFormat = "HH:mm:ss"
        let text = "\(f.string(from: Date())) \(prefix) \(line)"
        if let bar { bar.log(text) } else { FileHandle.standardError.write(Data((text + "\n").utf8)) }
    }
}

/// A progress bar on standard error when it is a terminal: items done / total, rate, ETA, live
/// workers and failures, redrawn in place.
final class TerminalProgress: @unchecked Sendable {  // guarded by `lock`
    private let lock = NSLock()
    private var last = ""

    /// nil unless standard error is a terminal.
    static func ifTerminal() -> TerminalProgress? { isatty(2) != 0 ? TerminalProgress() : nil }

    func draw(_ p: ProgressSnapshot) {
        let width = 30
        let filled = p.total > 0 ? min(width, width * p.done / p.total) : 0
        let bar = "[" + String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled) + "] " + p.line
        lock.lock(); defer { lock.unlock() }
        last = bar
        FileHandle.standardError.write(Data(("\r\u{1B}[K" + bar).utf8))
    }

    func log(_ line: String) {
        lock.lock(); defer { lock.unlock() }
        FileHandle.standardError.write(Data(("\r\u{1B}[K" + line + "\n" + last).utf8))
    }

    func finish() {
        lock.lock(); defer { lock.unlock() }
        if !last.isEmpty { FileHandle.standardError.write(Data("\n".utf8)) }
        last = ""
    }
}

/// Stops `stop` on SIGINT / SIGTERM (the sources must stay alive while they are needed).
func onTerminationSignals(_ stop: @escaping @Sendable () -> Void) -> [DispatchSourceSignal] {
    [SIGINT, SIGTERM].map { sig in
        signal(sig, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
        source.setEventHandler { stop() }
        source.resume()
        return source
    }
}

// MARK: - Reporting

/// The results table: per target, mean ± std (count) of accuracy per mixture size and condition;
/// then the average over targets per size and the drop from k = 1 to the largest k.
func renderTable(_ table: AggregateTable, conditions: [SweepCondition]) -> String {
    let conds = conditions.sorted()
    let targets = Array(Set(table.cells.keys.map(\.target))).sorted()
    var out = ""
    func cell(_ s: AccuracyStats?) -> String {
        guard let s else { return pad("–", 22) }
        return pad(String(format: "%.4f ± %.4f (%d)", s.mean, s.std, s.count), 22)
    }
    let header = "  k  " + conds.map { pad($0.rawValue + ": mean ± std (n)", 22) }.joined(separator: "  ")
    for t in targets {
        out += "target \(t)\n" + header + "\n"
        let ks = Set(table.cells.keys.filter { $0.target == t }.map(\.k)).sorted()
        for k in ks {
            out += String(format: "%3d  ", k) + conds.map { cell(table.cells[AggregateKey(target: t, k: k, condition: $0)]) }.joined(separator: "  ") + "\n"
        }
        out += "\n"
    }
    let ks = Set(table.cells.keys.map(\.k)).sorted()
    if !ks.isEmpty {
        out += "average over targets\n  k  " + conds.map { pad($0.rawValue, 10) }.joined(separator: "  ") + "\n"
        for k in ks {
            out += String(format: "%3d  ", k) + conds.map { c in pad(table.averageOverTargets(k: k, condition: c).map { String(format: "%.4f", $0) } ?? "–", 10) }.joined(separator: "  ") + "\n"
        }
        for c in conds {
            if let d = table.drop(condition: c) {
                out += String(format: "drop %@ k=%d → k=%d: %.4f\n", c.rawValue, d.from, d.to, d.drop)
            }
        }
    }
    return out
}

/// The table kept as results arrived must equal the one recomputed from the journal (two-pass).
func checkAggregates(_ summary: CoordinatorSummary, journal: Journal) throws -> String {
    let recomputed = try AggregateTable(journal: journal)
    guard recomputed.agrees(with: summary.table) else {
        throw CLIError("\(journal.path): the aggregates maintained during the run disagree with those recomputed from the journal — please report this with the journal attached")
    }
    return "aggregates: maintained as results arrived and recomputed from the journal agree (\(recomputed.cells.count) cells)\n"
}

/// Prints a finished (or stopped) run — the status JSON, or the table, the summary and the
/// aggregate check — and sets the exit status: 130 when stopped with work left, 4 when items failed.
func finishRun(_ summary: CoordinatorSummary, journal: Journal, conditions: [SweepCondition], workers: Int, json: Bool) throws {
    if json {
        print(try statusJSON(journal: journal))
    } else {
        print(renderTable(summary.table, conditions: conditions), terminator: "")
        print(summaryLines(summary, workers: workers), terminator: "")
        print(try checkAggregates(summary, journal: journal), terminator: "")
        print("journal: \(journal.path)")
    }
    guard summary.finished else { throw ExitCode(130) }
    if summary.counts.failed > 0 { throw ExitCode(4) }
}

func summaryLines(_ s: CoordinatorSummary, workers: Int) -> String {
    let t = s.workerTiming
    let workerSeconds = s.seconds * Double(max(workers, 1))
    let other = max(0, workerSeconds - t.evaluate - t.merge - t.setup)
    func pct(_ x: Double) -> String { String(format: "%.1f%%", 100 * x / max(workerSeconds, 1e-9)) }
    var lines = String(format: "items: %d recorded (%d this run, %d before), %d failed, %d duplicate results dropped, %d late results, %d messages refused, %d shards re-dispatched\n",
                       s.counts.done, s.recordedThisRun, s.recordedAtStart, s.counts.failed, s.duplicatesDropped, s.lateResults, s.refused, s.redispatched)
    lines += String(format: "time: %.1f s wall, %.1f items/s · %d worker(s) × wall = %.1f worker-s: evaluate %.1f (%@), merge %.2f (%@), setup %.2f (%@), other %.2f (%@: protocol, waiting for work, end-of-sweep idle) · coordinator busy %.2f s (%@ of wall)\n",
                    s.seconds, Double(s.recordedThisRun) / max(s.seconds, 1e-9), workers, workerSeconds,
                    t.evaluate, pct(t.evaluate), t.merge, pct(t.merge), t.setup, pct(t.setup), other, pct(other),
                    s.coordinatorBusy, String(format: "%.1f%%", 100 * s.coordinatorBusy / max(s.seconds, 1e-9)))
    return lines
}

// MARK: - sweep (one machine)

struct SweepCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep",
        abstract: "Run a whole sweep on this machine: a coordinator and N worker processes on loopback.",
        discussion: """
            Trains missing adapters when the config's adapters.train names a training config, hashes every \
            artifact, writes the journal (SQLite) and prints mean ± std of accuracy per target and mixture size. \
            Run it again with the same journal to resume an interrupted sweep. See docs/sweep.md.
            """)

    @OptionGroup var plan: SweepPlanOptions

    @Option(help: ArgumentHelp("The journal (default out/sweeps/<config name>.sqlite).", valueName: "FILE"))
    var journal: String?

    @Option(help: "Worker processes.")
    var workers: Int = 2

    @Option(help: "Evaluation threads per worker (default: cores ÷ workers, at least 1).")
    var threads: Int?

    @Option(help: "Endpoint the coordinator binds (loopback).")
    var bind: String = "tcp://127.0.0.1:*"

    @Option(help: "table or json.")
    var format: String = "table"

    func validate() throws {
        guard (1...256).contains(workers) else { throw ValidationError("--workers must be 1…256") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        guard ["table", "json"].contains(format) else { throw ValidationError("--format must be table or json") }
    }

    func run() throws {
        try reportingErrors {
            let bar = TerminalProgress.ifTerminal()
            let log = stderrLogger("[coordinator]", bar: bar)
            let sweepPlan = try plan.makePlan(log: log)
            let path = journal ?? "out/sweeps/\(((plan.config as NSString).lastPathComponent as NSString).deletingPathExtension).sqlite"
            let journal = try openJournal(path, plan: sweepPlan, resume: false)
            let coordinator = try Coordinator(plan: sweepPlan, journal: journal, settings: plan.settings(bar: bar), log: log)
            let perWorker = threads ?? max(1, ProcessInfo.processInfo.activeProcessorCount / workers)
            log("journal \(path)")

            let bound = BoundEndpoint()
            let finished = DispatchSemaphore(value: 0)
            let outcome = ResultBox<CoordinatorSummary>()
            let thread = Thread {
                do {
                    let catalog = try? DomainCatalog(assets: PretrainedEncoder.assetsDirectory(),
                                                     userFile: sweepPlan.config.datasets.map { URL(fileURLWithPath: $0) })
                    outcome.set(.success(try coordinator.run(bind: bind, assets: AssetServer(plan: sweepPlan, catalog: catalog),
                                                             onBound: { bound.set($0) })))
                } catch {
                    outcome.set(.failure(error))
                    bound.set(nil)
                }
                finished.signal()
            }
            thread.name = "adaptermix-coordinator"
            thread.start()
            let signals = onTerminationSignals { coordinator.requestStop() }
            defer { signals.forEach { $0.cancel() } }
            guard let endpoint = bound.wait() else { finished.wait(); _ = try outcome.get(); return }

            let fleet = WorkerFleet(endpoint: endpoint, count: workers, threads: perWorker, planHash: sweepPlan.hash, log: log)
            try fleet.start()
            while finished.wait(timeout: .now() + 0.2) == .timedOut { fleet.superviseOnce() }
            fleet.finish()
            bar?.finish()
            let summary = try outcome.get()
            try finishRun(summary, journal: journal, conditions: sweepPlan.config.conditions, workers: workers, json: format == "json")
        }
    }
}

/// The worker processes of `sweep`: started, restarted when one dies while the sweep runs, and
/// stopped at the end.
final class WorkerFleet {
    let endpoint: String
    let count: Int
    let threads: Int
    let planHash: String
    let log: @Sendable (String) -> Void
    private var processes: [Process] = []
    private var restarts = 0

    init(endpoint: String, count: Int, threads: Int, planHash: String, log: @escaping @Sendable (String) -> Void) {
        self.endpoint = endpoint
        self.count = count
        self.threads = threads
        self.planHash = planHash
        self.log = log
    }

    private func spawn(_ i: Int) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/proc/self/exe")
        p.arguments = ["worker", "--connect", endpoint, "--threads", String(threads), "--plan-hash", planHash,
                       "--name", "\(ProcessInfo.processInfo.hostName):w\(i)", "--give-up", "60"]
        try p.run()
        return p
    }

    func start() throws {
        for i in 0..<count { processes.append(try spawn(i)) }
        log("started \(count) worker process(es), \(threads) thread(s) each, connecting to \(endpoint)")
    }

    /// Restarts a worker that died (a crash or a kill) while the sweep runs, up to 3 restarts per
    /// worker. A worker that exited 0 left because the coordinator said bye: it stays gone.
    func superviseOnce() {
        for (i, p) in processes.enumerated() where !p.isRunning {
            if p.terminationReason == .exit && p.terminationStatus == 0 { continue }
            guard restarts < 3 * count else { continue }
            let how = p.terminationReason == .uncaughtSignal ? "signal \(p.terminationStatus)" : "exit \(p.terminationStatus)"
            restarts += 1
            log("worker w\(i) (pid \(p.processIdentifier)) ended (\(how)); starting a new one")
            if let q = try? spawn(i) { processes[i] = q }
        }
    }

    /// Waits up to 10 s for the workers to leave after the coordinator's bye, then terminates them.
    func finish() {
        let deadline = Date().addingTimeInterval(10)
        while processes.contains(where: \.isRunning) && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        for p in processes where p.isRunning { p.terminate() }
        for p in processes { p.waitUntilExit() }
    }
}

/// A value handed from one thread to another once.
final class ResultBox<T: Sendable>: @unchecked Sendable {  // guarded by `lock`
    private let lock = NSLock()
    private var value: Result<T, Error>?
    func set(_ r: Result<T, Error>) { lock.lock(); value = r; lock.unlock() }
    func get() throws -> T {
        lock.lock(); defer { lock.unlock() }
        guard let value else { throw CLIError("the coordinator ended without a result") }
        return try value.get()
    }
}

/// The endpoint the coordinator thread bound (nil: it failed before binding).
final class BoundEndpoint: @unchecked Sendable {  // guarded by `condition`
    private let condition = NSCondition()
    private var done = false
    private var endpoint: String?
    func set(_ e: String?) {
        condition.lock()
        if !done { endpoint = e; done = true; condition.broadcast() }
        condition.unlock()
    }
    func wait() -> String? {
        condition.lock(); defer { condition.unlock() }
        while !done { condition.wait() }
        return endpoint
    }
}

// MARK: - coordinator

struct CoordinatorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "coordinator",
        abstract: "Serve a sweep's work to workers over ZeroMQ and journal the results (the head node's half).",
        discussion: """
            Binds a ROUTER at --bind; workers connect with 'adaptermix worker --connect'. Reopening an existing \
            journal (or --resume) verifies the plan hash and queues only what is not recorded. Exit status: 0 \
            when every item is recorded, 4 when some failed, 130 when stopped (SIGINT/SIGTERM) with work left.
            """)

    @OptionGroup var plan: SweepPlanOptions

    @Option(help: ArgumentHelp("The journal (SQLite).", valueName: "FILE"))
    var journal: String

    @Option(help: "Endpoint to bind, e.g. tcp://127.0.0.1:5555 (tcp://127.0.0.1:* picks a free port).")
    var bind: String

    @Flag(help: "Resume: the journal must exist and hold this plan.")
    var resume = false

    @Option(name: .customLong("endpoint-file"), help: ArgumentHelp("Write the bound endpoint to FILE (for workers to read).", valueName: "FILE"))
    var endpointFile: String?

    @Option(help: ArgumentHelp("CURVE: DIR/coordinator.key and the allowed workers' public keys in DIR/authorized/*.pub ('adaptermix keys generate'). All traffic is encrypted; unlisted workers are refused.", valueName: "DIR"))
    var curve: String?

    @Flag(help: "Allow binding a non-loopback address without --curve (plaintext, unauthenticated: only on a network you trust).")
    var insecure = false

    @Option(help: "table or json.")
    var format: String = "table"

    func validate() throws {
        guard ["table", "json"].contains(format) else { throw ValidationError("--format must be table or json") }
        guard bind.hasPrefix("tcp://") || bind.hasPrefix("ipc://") || bind.hasPrefix("inproc://") else {
            throw ValidationError("--bind must be a ZeroMQ endpoint such as tcp://127.0.0.1:5555")
        }
        if curve == nil && !insecure && !isLoopbackEndpoint(bind) {
            throw ValidationError("--bind \(bind) listens beyond this machine: give --curve DIR (keys from 'adaptermix keys generate') so only your workers get in and traffic is encrypted, or --insecure to accept anyone on that network in plaintext")
        }
    }

    func run() throws {
        try reportingErrors {
            let bar = TerminalProgress.ifTerminal()
            let log = stderrLogger("[coordinator]", bar: bar)
            var settings = plan.settings(bar: bar)
            if let curve { settings.curve = try CurveServer(directory: URL(fileURLWithPath: curve)) }
            let sweepPlan = try plan.makePlan(log: log)
            let journal = try openJournal(self.journal, plan: sweepPlan, resume: resume)
            let coordinator = try Coordinator(plan: sweepPlan, journal: journal, settings: settings, log: log)
            let signals = onTerminationSignals { coordinator.requestStop() }
            defer { signals.forEach { $0.cancel() } }
            let summary: CoordinatorSummary
            do {
                let catalog = try? DomainCatalog(assets: PretrainedEncoder.assetsDirectory(),
                                                 userFile: sweepPlan.config.datasets.map { URL(fileURLWithPath: $0) })
                summary = try coordinator.run(bind: bind, assets: AssetServer(plan: sweepPlan, catalog: catalog)) { endpoint in
                    log("listening on \(endpoint)\(settings.curve == nil ? "" : " (CURVE, \(settings.curve!.authorized().count) authorized worker key(s))") · sweep \(journal.sweepID) · plan \(sweepPlan.hash)")
                    if let endpointFile {
                        try? (endpoint + "\n").write(toFile: endpointFile, atomically: true, encoding: .utf8)
                    }
                }
            } catch let e as ZMQError {
                throw CLIError("\(e) — is another process bound to \(bind)?")
            }
            bar?.finish()
            try finishRun(summary, journal: journal, conditions: sweepPlan.config.conditions, workers: max(summary.workersSeen, 1),
                          json: format == "json")
        }
    }
}

// MARK: - worker

struct WorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Evaluate shards for a coordinator (a compute node's half).",
        discussion: """
            Connects a DEALER to --connect, learns the sweep from the coordinator, checks its own copies of the \
            base model, adapters and test splits against the sweep's hashes, then pulls and evaluates shards \
            until the coordinator says the sweep is finished. Reconnects with back-off when the coordinator \
            goes away. Exit status: 0 finished or stopped, 1 cannot evaluate (files differ), 2 refused, 3 gave up.
            """)

    @Option(help: "The coordinator's endpoint, e.g. tcp://HEAD:5555.")
    var connect: String

    @Option(help: "Evaluation threads (each runs BLAS single-threaded). Default: all cores.")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    @Option(help: "Shards to ask for beyond the one being evaluated.")
    var prefetch: Int = 1

    @Option(name: .customLong("plan-hash"), help: "Only join the sweep with this plan hash (64 hex digits); otherwise join whatever the coordinator runs.")
    var planHash: String?

    @Option(help: "Name in the coordinator's log (default host:pid).")
    var name: String?

    @Option(name: .customLong("give-up"), help: "Exit when no coordinator has answered for this many seconds.")
    var giveUp: Double = 600

    @Option(name: .customLong("curve-key"), help: ArgumentHelp("CURVE: this worker's key pair (a .key file from 'adaptermix keys generate').", valueName: "FILE"))
    var curveKey: String?

    @Option(name: .customLong("server-key"), help: ArgumentHelp("CURVE: the coordinator's public key (coordinator.pub).", valueName: "FILE"))
    var serverKey: String?

    @Option(name: .customLong("delay-ms"), help: .hidden)
    var delayMs: Double = 0

    @Option(help: ArgumentHelp("Where the base model, adapters and test splits come from: auto (the config's paths when their bytes match, else the cache, else fetched from the coordinator), fetch (the cache, else the coordinator: no shared filesystem needed), or a shared folder DIR laid out like the cache (DIR/ab/abcd…), still verified.", valueName: "auto|fetch|DIR"))
    var assets: String = "auto"

    @Option(help: ArgumentHelp("Content-addressed cache of fetched artifacts (default $ADAPTERMIX_CACHE, else ~/.cache/adaptermix).", valueName: "DIR"))
    var cache: String?

    func validate() throws {
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
        guard (0...64).contains(prefetch) else { throw ValidationError("--prefetch must be 0…64") }
        if let planHash, PlanHash(hex: planHash) == nil { throw ValidationError("--plan-hash must be 64 hex digits") }
        guard giveUp > 0 else { throw ValidationError("--give-up must be positive") }
        guard (curveKey == nil) == (serverKey == nil) else { throw ValidationError("CURVE needs both --curve-key and --server-key") }
    }

    func run() throws {
        let label = name ?? "\(ProcessInfo.processInfo.hostName):\(getpid())"
        let log = stderrLogger("[worker \(label)]")
        var settings = WorkerSettings(name: label, threads: threads)
        settings.prefetch = prefetch
        settings.planHash = planHash.flatMap { PlanHash(hex: $0) }
        settings.giveUpAfter = giveUp
        settings.delayPerShard = delayMs / 1000
        if let curveKey, let serverKey {
            do {
                settings.curve = try CurveClient(keyFile: URL(fileURLWithPath: curveKey), serverKeyFile: URL(fileURLWithPath: serverKey))
            } catch { throw CLIError("\(error)") }
        }
        let threads = self.threads
        let mode = assets
        let cacheRoot = URL(fileURLWithPath: cache ?? ProcessInfo.processInfo.environment["ADAPTERMIX_CACHE"]
            ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/adaptermix").path)
        let worker = Worker(endpoint: connect, settings: settings, log: log) { welcome, fetcher in
            if welcome.artifacts.evaluator == "noop" { return NoopEvaluator() }
            return try makeMixtureEvaluator(welcome: welcome, fetcher: fetcher, mode: mode, cacheRoot: cacheRoot, threads: threads, log: log)
        }
        let signals = onTerminationSignals { worker.requestStop() }
        defer { signals.forEach { $0.cancel() } }
        // The per-run view folders (links into the cache) go with the process.
        defer {
            let views = cacheRoot.appendingPathComponent("views")
            for name in (try? FileManager.default.contentsOfDirectory(atPath: views.path)) ?? [] where name.hasSuffix("-\(getpid())") {
                try? FileManager.default.removeItem(at: views.appendingPathComponent(name))
            }
        }
        let exit: WorkerExit
        do { exit = try worker.run() } catch { throw CLIError("worker: \(error)") }
        switch exit {
        case .finished(let why), .stopped(let why):
            log("done: \(why)")
        case .refused(let r):
            FileHandle.standardError.write(Data("error: refused by the coordinator at \(connect): \(r.reason)\n".utf8))
            throw ExitCode(2)
        case .gaveUp(let why):
            FileHandle.standardError.write(Data("error: \(why)\n".utf8))
            throw ExitCode(3)
        case .failed(let why):
            FileHandle.standardError.write(Data("error: \(why)\n".utf8))
            throw ExitCode(1)
        }
    }
}

/// The worker's evaluator: every artifact resolved to verified local bytes (the config's paths,
/// the cache, a shared folder, or fetched from the coordinator), linked into a per-plan view folder
/// that the evaluator reads as if it were the coordinator's layout.
func makeMixtureEvaluator(welcome: Welcome, fetcher: BlobFetcher, mode: String, cacheRoot: URL, threads: Int,
                          log: @escaping @Sendable (String) -> Void) throws -> MixtureEvaluator {
    let config = try SweepConfig.parse(yaml: welcome.config, file: "the coordinator's config")
    let artifacts = welcome.artifacts
    let shared = ["auto", "fetch"].contains(mode) ? nil : URL(fileURLWithPath: mode)
    let useLocalPaths = mode == "auto"
    let cache = AssetCache(root: cacheRoot.appendingPathComponent("blobs"), shared: shared, log: log)
    let planHash = sha256Hex(Data((config.canonicalJSON() + artifacts.canonical).utf8))
    let view = cacheRoot.appendingPathComponent("views/\(planHash.prefix(16))-\(getpid())")
    let fm = FileManager.default
    try? fm.removeItem(at: view)
    func link(_ sha: String, name: String, local: String?, into dir: URL, as file: String) throws {
        let source = try cache.resolve(sha256: sha, name: name, localCopy: useLocalPaths ? local.map { URL(fileURLWithPath: $0) } : nil,
                                       fetcher: fetcher)
        try fm.createDirectory(at: dir, withIntermediateDirectories: true)
        try fm.createSymbolicLink(at: dir.appendingPathComponent(file), withDestinationURL: source.absoluteURL)
    }
    let modelDir = view.appendingPathComponent("model")
    try link(artifacts.baseModel, name: "model/model.safetensors", local: config.baseModelWeights, into: modelDir, as: "model.safetensors")
    for (file, sha) in artifacts.baseModelFiles.sorted(by: { $0.key < $1.key }) {
        try link(sha, name: "model/\(file)", local: (config.baseModel as NSString).appendingPathComponent(file), into: modelDir, as: file)
    }
    var viewConfig = config
    viewConfig.baseModel = modelDir.path
    viewConfig.adapterDir = view.appendingPathComponent("adapters").path
    for d in config.sortedDomains {
        for (file, sha) in (artifacts.adapters[d] ?? [:]).sorted(by: { $0.key < $1.key }) {
            try link(sha, name: "adapters/\(d)/\(file)", local: (config.adapterFolder(for: d) as NSString).appendingPathComponent(file),
                     into: URL(fileURLWithPath: viewConfig.adapterFolder(for: d)), as: file)
        }
    }
    // A user catalog that is not on this worker is no reason to stop: test splits can be fetched.
    let catalog: DomainCatalog
    do {
        catalog = try DomainCatalog(assets: PretrainedEncoder.assetsDirectory(), userFile: config.datasets.map { URL(fileURLWithPath: $0) })
    } catch {
        catalog = try DomainCatalog(assets: PretrainedEncoder.assetsDirectory())
    }
    // Every file in the view came through the cache, which checked its SHA-256: not hashed again.
    let evaluator = try MixtureEvaluator(config: viewConfig, artifacts: artifacts, catalog: catalog, threads: threads, filesVerified: true)
    evaluator.testSplitProvider = { domain in
        guard let sha = artifacts.testSplits[domain] else { throw CLIError("the coordinator's plan has no test split for \(domain)") }
        if useLocalPaths, let s = try? catalog.load(domain, options: SplitOptions(seed: config.seed, maxTest: config.testCap(for: domain))),
           ArtifactHashes.testSplitHash(s.test, labels: s.labels) == sha {
            return (s.labels, s.test)
        }
        let file = try cache.resolve(sha256: sha, name: "test/\(domain)", localCopy: nil, fetcher: fetcher)
        let text = try String(contentsOf: file, encoding: .utf8)
        return try ArtifactHashes.parseTestSplit(text, source: file.path)
    }
    return evaluator
}

// MARK: - status

/// `{"total", "done", "failed", …, "aggregates": [{"target", "k", "condition", "count", "mean", "variance", "std", "min", "max"}]}`
func statusJSON(journal: Journal) throws -> String {
    let c = try journal.counts()
    let p = try journal.progress()
    let table = try AggregateTable(journal: journal)
    let aggregates: [[String: Any]] = table.sortedKeys.map { key in
        let s = table.cells[key]!
        return ["target": key.target, "k": key.k, "condition": key.condition.rawValue, "count": s.count, "mean": s.mean,
                "variance": s.variance, "std": s.std, "min": s.min, "max": s.max]
    }
    let object: [String: Any] = ["sweep_id": journal.sweepID, "plan_hash": journal.planHash, "total": c.total, "done": c.done,
                                 "failed": c.failed, "pending": c.pending + c.running, "duplicates_dropped": c.duplicatesDropped,
                                 "results": c.resultRows, "rate": p.rate,
                                 "eta_seconds": p.rate > 0 ? Double(c.total - c.done - c.failed) / p.rate as Any : NSNull(),
                                 "live_workers": p.liveWorkers.map { $0 as Any } ?? NSNull(),
                                 "coordinator": p.coordinatorPID.map { pid -> Any in
                                     ["pid": pid, "endpoint": p.endpoint ?? "", "seconds_since_seen": p.secondsSinceCoordinatorNote ?? 0,
                                      "finished": p.coordinatorFinished ?? false]
                                 } ?? NSNull(),
                                 "aggregates": aggregates]
    let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
    return String(decoding: data, as: UTF8.self)
}

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Progress and partial aggregates of a sweep, read from its journal (safe while the sweep runs).")

    @Option(help: ArgumentHelp("The journal.", valueName: "FILE"))
    var journal: String

    @Option(help: "table or json.")
    var format: String = "table"

    func validate() throws {
        guard ["table", "json"].contains(format) else { throw ValidationError("--format must be table or json") }
    }

    func run() throws {
        try reportingErrors {
            let j = try Journal.open(path: journal)
            if format == "json" {
                print(try statusJSON(journal: j))
                return
            }
            let c = try j.counts()
            let p = try j.progress()
            let conditions = Set(try j.results().map(\.condition))
            print("sweep \(j.sweepID) · plan \(j.planHash)")
            let left = c.total - c.done - c.failed
            print(String(format: "%d / %d items recorded (%.1f%%), %d failed, %d to do, %d duplicate results dropped",
                         c.done, c.total, 100 * Double(c.done) / Double(max(c.total, 1)), c.failed, c.pending + c.running, c.duplicatesDropped))
            if let pid = p.coordinatorPID, let seen = p.secondsSinceCoordinatorNote {
                let state = p.coordinatorFinished == true ? "finished" : seen < 10 ? "running" : "not heard from (stopped or killed?)"
                print(String(format: "coordinator pid %d at %@: %@, last note %.0f s ago, %d live worker(s) · %.1f items/s over the last minute · ETA %@",
                             pid, p.endpoint ?? "?", state, seen, p.liveWorkers ?? 0, p.rate,
                             p.rate > 0 && left > 0 ? formatDuration(Double(left) / p.rate) : (left == 0 ? "done" : "?")))
            }
            print("")
            print(renderTable(try AggregateTable(journal: j), conditions: conditions.isEmpty ? [.clean] : Array(conditions)), terminator: "")
        }
    }
}

// MARK: - keys

struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "CURVE key pairs for the coordinator and its workers.",
        subcommands: [KeysGenerate.self])
}

struct KeysGenerate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Write CURVE key pairs: a coordinator's and its workers' (or one named pair).",
        discussion: """
            Without --name: DIR/coordinator.key (secret, mode 600) and DIR/coordinator.pub, and for each worker             DIR/workers/worker-I.key (give it to that worker) and DIR/authorized/worker-I.pub (the coordinator's             allowlist). Run 'adaptermix coordinator --curve DIR' and 'adaptermix worker --curve-key             DIR/workers/worker-I.key --server-key DIR/coordinator.pub'. With --name NAME: one pair NAME.key /             NAME.pub in DIR (copy NAME.pub into the coordinator's authorized/ folder to admit it; no restart needed).
            """)

    @Option(help: ArgumentHelp("Output folder.", valueName: "DIR"))
    var out: String

    @Option(help: "Worker key pairs to make (without --name).")
    var workers: Int = 1

    @Option(help: "Make one key pair with this name instead.")
    var name: String?

    func validate() throws {
        guard (0...10_000).contains(workers) else { throw ValidationError("--workers must be 0…10000") }
        if let name, name.isEmpty || name.contains("/") { throw ValidationError("--name must be a plain file name") }
    }

    func run() throws {
        try reportingErrors {
            let dir = URL(fileURLWithPath: out)
            if let name {
                try CurveKeyPair.generate().write(to: dir, name: name)
                print("wrote \(dir.appendingPathComponent(name + ".key").path) and \(name).pub")
                return
            }
            try CurveKeyPair.generate().write(to: dir, name: "coordinator")
            let authorized = dir.appendingPathComponent("authorized"), workerDir = dir.appendingPathComponent("workers")
            try FileManager.default.createDirectory(at: authorized, withIntermediateDirectories: true)
            for i in stride(from: 1, through: workers, by: 1) {
                let pair = try CurveKeyPair.generate()
                try pair.write(to: workerDir, name: "worker-\(i)")
                // The allowlist holds the public key only.
                try FileManager.default.moveItem(at: workerDir.appendingPathComponent("worker-\(i).pub"),
                                                  to: authorized.appendingPathComponent("worker-\(i).pub"))
            }
            print("wrote \(dir.path)/coordinator.key, coordinator.pub, \(workers) worker key(s) in workers/ and their public keys in authorized/")
        }
    }
}
