import Datasets
import Foundation
import Sweep

// Artifacts addressed by SHA-256: the coordinator serves every file a worker needs (base model,
// adapters, each target's canonical test split) in chunks over the sweep's own connection, so
// workers need no shared filesystem; a worker verifies each artifact and keeps it in a
// content-addressed cache (docs/sweep.md, "Artifacts").

/// The coordinator's side: SHA-256 → where the bytes are. Used by the coordinator's loop thread
/// only (it is handed to that thread once).
public final class AssetServer: @unchecked Sendable {
    enum Source {
        case file(String)
        case testSplit(String)
    }

    private let plan: SweepPlan
    private let catalog: DomainCatalog?
    private var sources: [String: Source] = [:]
    private var splits: [String: Data] = [:]
    /// Bytes sent, for the log.
    public private(set) var bytesServed = 0

    /// Every artifact of the plan's manifest; test splits are made on first request from `catalog`.
    public init(plan: SweepPlan, catalog: DomainCatalog?) {
        self.plan = plan
        self.catalog = catalog
        let c = plan.config
        for (path, sha) in plan.artifacts.manifest {
            let parts = path.split(separator: "/", maxSplits: 2).map(String.init)
            switch parts.first {
            case "model": sources[sha] = .file((c.baseModel as NSString).appendingPathComponent(parts[1]))
            case "adapters": sources[sha] = .file((c.adapterFolder(for: parts[1]) as NSString).appendingPathComponent(parts[2]))
            case "test": sources[sha] = .testSplit(parts[1])
            default: break
            }
        }
    }

    /// The chunk a worker asked for, or an error chunk saying why not.
    public func chunk(_ r: FetchRequest) -> BlobChunk {
        func refuse(_ why: String) -> BlobChunk { BlobChunk(sha256: r.sha256, offset: r.offset, total: 0, data: Data(), error: why) }
        guard let source = sources[r.sha256] else { return refuse("no artifact with SHA-256 \(r.sha256) in this sweep") }
        let length = min(r.length, BlobChunk.maxLength)
        switch source {
        case .file(let path):
            guard let handle = FileHandle(forReadingAtPath: path) else { return refuse("the coordinator cannot read \(path)") }
            defer { try? handle.close() }
            do {
                let total = Int(try handle.seekToEnd())
                guard r.offset <= total else { return refuse("offset \(r.offset) beyond \(total) bytes") }
                try handle.seek(toOffset: UInt64(r.offset))
                let data = try handle.read(upToCount: length) ?? Data()
                bytesServed += data.count
                return BlobChunk(sha256: r.sha256, offset: r.offset, total: total, data: data)
            } catch {
                return refuse("the coordinator cannot read \(path): \(error.localizedDescription)")
            }
        case .testSplit(let domain):
            let text: Data
            if let cached = splits[domain] {
                text = cached
            } else {
                guard let catalog else { return refuse("the coordinator has no dataset catalog to make test splits from") }
                let c = plan.config
                do {
                    let s = try catalog.load(domain, options: SplitOptions(seed: c.seed, maxTest: c.testCap(for: domain)))
                    text = Data(ArtifactHashes.testSplitText(s.test, labels: s.labels).utf8)
                } catch {
                    return refuse("the coordinator cannot load domain \(domain): \(error)")
                }
                guard sha256Hex(text) == r.sha256 else {
                    return refuse("the coordinator's test split of \(domain) no longer hashes to the plan's \(r.sha256): its dataset changed since the plan was made")
                }
                splits[domain] = text
            }
            guard r.offset <= text.count else { return refuse("offset \(r.offset) beyond \(text.count) bytes") }
            let end = min(text.count, r.offset + length)
            bytesServed += end - r.offset
            return BlobChunk(sha256: r.sha256, offset: r.offset, total: text.count, data: text.subdata(in: r.offset..<end))
        }
    }
}

/// Fetches an artifact by SHA-256 into a file (the worker's connection does the transfer).
public protocol BlobFetcher: Sendable {
    /// Writes the artifact's bytes to `destination` (replacing it), verified against `sha256`.
    func fetch(sha256: String, to destination: URL) throws
}

/// A worker's content-addressed cache: `<root>/<first two hex digits>/<sha256>`, every file
/// verified before use. Sources in order: the cache itself, a shared `--assets` folder (same
/// layout), a path given by the caller (e.g. the config's own path on a shared filesystem), and
/// the coordinator.
public struct AssetCache: Sendable {
    public let root: URL
    public let shared: URL?
    public let log: @Sendable (String) -> Void

    public init(root: URL, shared: URL? = nil, log: @escaping @Sendable (String) -> Void) {
        self.root = root
        self.shared = shared
        self.log = log
    }

    public func path(of sha: String) -> URL {
        root.appendingPathComponent(String(sha.prefix(2))).appendingPathComponent(sha)
    }

    static func hash(_ url: URL) -> String? {
        guard let data = try? Data(contentsOf: url, options: .mappedIfSafe) else { return nil }
        return sha256Hex(data)
    }

    /// A verified local file with these bytes, fetching them when no local source has them.
    public func resolve(sha256 sha: String, name: String, localCopy: URL?, fetcher: BlobFetcher?) throws -> URL {
        let fm = FileManager.default
        let target = path(of: sha)
        try fm.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
        if fm.fileExists(atPath: target.path) {
            if Self.hash(target) == sha { return target }
            log("cached \(name) (\(target.path)) does not hash to \(sha): corrupted; fetching it again")
            try? fm.removeItem(at: target)
        }
        if let shared {
            let candidate = shared.appendingPathComponent(String(sha.prefix(2))).appendingPathComponent(sha)
            if fm.fileExists(atPath: candidate.path) {
                let actual = Self.hash(candidate)
                guard actual == sha else {
                    throw SecurityError("\(candidate.path) (\(name)) hashes to \(actual ?? "(unreadable)"), not \(sha): the shared assets folder holds different bytes — refusing them; fix or remove that file")
                }
                return candidate
            }
        }
        if let localCopy, fm.fileExists(atPath: localCopy.path), Self.hash(localCopy) == sha {
            return localCopy
        }
        guard let fetcher else {
            throw SecurityError("\(name) (SHA-256 \(sha)) is not in the cache\(shared.map { " or \($0.path)" } ?? "") and there is no coordinator to fetch it from")
        }
        // Per process: workers sharing a cache folder never write the same partial file.
        let part = target.appendingPathExtension("part-\(getpid())")
        try fetcher.fetch(sha256: sha, to: part)
        guard Self.hash(part) == sha else {
            try? fm.removeItem(at: part)
            throw SecurityError("\(name) fetched from the coordinator does not hash to \(sha): refusing it")
        }
        try? fm.removeItem(at: target)
        try fm.moveItem(at: part, to: target)
        return target
    }
}
