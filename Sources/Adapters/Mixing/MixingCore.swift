import Dispatch
import Encoder
import Foundation
import Tensor

// Mixing and signed-weight analysis (docs/mixing.md): pure functions over adapter tensors.
//
// Everything here acts on an adapter's BODY — every adapter tensor, biases included, in buffer order
// (`layout.bodyCount` values) — and never on its classification head: heads of different domains have
// different label sets. A mixed adapter is the mixed body with the TARGET domain's head and labels.

/// One adapter taking part in an analysis or a mixture.
public struct MixMember: @unchecked Sendable {  // the adapter is not mutated while mixing
    /// How errors and records name it (the adapter folder, on the command line).
    public var name: String
    public var adapter: Adapter
    /// SHA-256 of the base model's model.safetensors, as its folder records it (nil: not recorded).
    public var baseModelSHA256: String?

    public init(name: String, adapter: Adapter, baseModelSHA256: String? = nil) {
        self.name = name; self.adapter = adapter; self.baseModelSHA256 = baseModelSHA256
    }
}

/// A refusal or a bad option of a mixing function, in one sentence that names the adapters involved.
public struct MixingError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

// MARK: - The body

extension AdapterLayout {
    /// The body tensors (every tensor before the head) with their flat ranges, in buffer order.
    public var bodyTensors: [(key: String, shape: [Int], range: Range<Int>)] {
        table.filter { $0.offset < bodyCount }.map { t in (t.key, t.shape, t.offset..<(t.offset + t.shape.reduce(1, *))) }
    }

    /// The flat range of each encoder layer's adapter tensors (`encoder.layer.{l}.…`), layer by layer.
    /// The ranges tile the body: every body tensor belongs to exactly one layer.
    public var layerRanges: [Range<Int>] {
        var lo = [Int](repeating: Int.max, count: layers.count), hi = [Int](repeating: 0, count: layers.count)
        for t in bodyTensors {
            guard let l = Self.layerIndex(t.key), l < layers.count else { continue }
            lo[l] = min(lo[l], t.range.lowerBound); hi[l] = max(hi[l], t.range.upperBound)
        }
        return (0..<layers.count).map { lo[$0] == Int.max ? 0..<0 : lo[$0]..<hi[$0] }
    }

    static func layerIndex(_ key: String) -> Int? {
        guard let r = key.range(of: "encoder.layer.") else { return nil }
        return Int(key[r.upperBound...].prefix { $0.isNumber })
    }

    /// Whether two layouts have the same body: the same tensors with the same shapes at the same offsets.
    func sameBody(as other: AdapterLayout) -> Bool {
        bodyCount == other.bodyCount && bodyTensors.elementsEqual(other.bodyTensors) { $0.key == $1.key && $0.shape == $1.shape && $0.range == $1.range }
    }
}

extension Adapter {
    /// The body (every adapter tensor, biases included; not the head), read-only.
    public var body: UnsafeBufferPointer<Float> { UnsafeBufferPointer(start: parameters.base, count: layout.bodyCount) }

    /// The body as an array.
    public var bodyValues: [Float] { Array(body) }

    /// A new adapter with this adapter's head and labels on `body` (laid out as `layout`, by default this
    /// adapter's own; a LoRA layout of another rank is allowed, the head is copied by key).
    public func replacingBody(_ body: [Float], layout newLayout: AdapterLayout? = nil) -> Adapter {
        let layout = newLayout ?? self.layout
        precondition(body.count == layout.bodyCount, "a body of \(body.count) values for a layout of \(layout.bodyCount)")
        let p = ParameterBuffer(count: layout.count)
        body.withUnsafeBufferPointer { p.base.update(from: $0.baseAddress!, count: $0.count) }
        let headCount = self.layout.count - self.layout.bodyCount
        precondition(layout.count - layout.bodyCount == headCount, "the head must keep its size")
        p.pointer(layout.bodyCount).update(from: parameters.pointer(self.layout.bodyCount), count: headCount)
        return Adapter(layout: layout, labels: labels, parameters: p)
    }

    /// A deep copy.
    public func copy() -> Adapter { replacingBody(bodyValues) }
}

// MARK: - Namespace and checks

/// Mixing, FSD, pruning and merging. Every function is pure: inputs are never modified.
public enum Mixing {
    /// Refuses adapters that cannot be compared or mixed: another method, other sizes (hidden size,
    /// layers, bottleneck, non-linearity, LoRA rank, α and targets) or another base model (the SHA-256
    /// their folders record; folders that record none are not checked). Names the two folders.
    public static func checkCompatible(_ members: [MixMember]) throws {
        guard let first = members.first else { throw MixingError("no adapters given") }
        let a = first.adapter.layout
        for m in members.dropFirst() {
            let b = m.adapter.layout
            func refuse(_ what: String, _ x: String, _ y: String, hint: String) -> MixingError {
                MixingError("cannot combine \(first.name) and \(m.name): different \(what) (\(x) vs \(y)) — \(hint)")
            }
            if a.config.method != b.config.method {
                throw refuse("methods", a.config.method.rawValue, b.config.method.rawValue, hint: "mix adapters of one method")
            }
            let sizes = "mix adapters trained with the same sizes on the same base model"
            if a.hidden != b.hidden { throw refuse("hidden sizes", "\(a.hidden)", "\(b.hidden)", hint: sizes) }
            if a.layers.count != b.layers.count { throw refuse("layer counts", "\(a.layers.count)", "\(b.layers.count)", hint: sizes) }
            switch a.config.method {
            case .pfeiffer, .houlsby:
                if a.config.bottleneck != b.config.bottleneck {
                    throw refuse("bottleneck sizes", "\(a.config.bottleneck)", "\(b.config.bottleneck)", hint: sizes)
                }
                if a.config.nonLinearity != b.config.nonLinearity {
                    throw refuse("non-linearities", a.config.nonLinearity.rawValue, b.config.nonLinearity.rawValue, hint: sizes)
                }
            case .lora:
                if a.config.loraRank != b.config.loraRank { throw refuse("LoRA ranks", "r = \(a.config.loraRank)", "r = \(b.config.loraRank)", hint: sizes) }
                if Set(a.config.loraTargets) != Set(b.config.loraTargets) {
                    throw refuse("LoRA targets", a.config.loraTargets.joined(separator: ","), b.config.loraTargets.joined(separator: ","), hint: sizes)
                }
                if a.config.loraAlpha != b.config.loraAlpha {
                    throw refuse("LoRA alphas", "\(a.config.loraAlpha)", "\(b.config.loraAlpha)", hint: "their scalings α/r differ; " + sizes)
                }
            }
            guard a.sameBody(as: b) else {
                throw MixingError("cannot combine \(first.name) and \(m.name): their adapter tensors differ in names or shapes — \(sizes)")
            }
        }
        let recorded = members.filter { $0.baseModelSHA256 != nil }
        if let r0 = recorded.first, let other = recorded.first(where: { $0.baseModelSHA256!.lowercased() != r0.baseModelSHA256!.lowercased() }) {
            throw MixingError("cannot combine \(r0.name) and \(other.name): they were trained on different base models (model.safetensors sha256 \(r0.baseModelSHA256!.prefix(12))… vs \(other.baseModelSHA256!.prefix(12))…) — mix adapters of one base model")
        }
    }

    // MARK: Fixed summation order

    /// A fixed order of the members that does not depend on how they were listed: by the bit patterns of
    /// their bodies (lexicographically), then by their keys (weights). Sums taken in this order give the
    /// same bits for any order of the inputs.
    static func canonicalOrder(_ bodies: [UnsafeBufferPointer<Float>], keys: [Double]) -> [Int] {
        func less(_ i: Int, _ j: Int) -> Bool {
            let a = bodies[i], b = bodies[j]
            if a.baseAddress != b.baseAddress || a.count != b.count {
                for p in 0..<min(a.count, b.count) {
                    let x = a[p].bitPattern, y = b[p].bitPattern
                    if x != y { return x < y }
                }
                if a.count != b.count { return a.count < b.count }
            }
            return keys[i].bitPattern < keys[j].bitPattern
        }
        return bodies.indices.sorted(by: less)
    }

    /// (Σ cᵢ·θᵢ) / divisor elementwise, in Double, summed in the canonical order, members with cᵢ = 0
    /// skipped and the sum started from the first term (so one member with c = divisor gives back its bits,
    /// −0.0 included).
    public static func linearCombination(_ bodies: [UnsafeBufferPointer<Float>], coefficients: [Double], divisor: Double = 1,
                                         threads: Int = ProcessInfo.processInfo.activeProcessorCount) -> [Float] {
        precondition(bodies.count == coefficients.count && !bodies.isEmpty)
        let n = bodies[0].count
        precondition(bodies.allSatisfy { $0.count == n })
        return elementwise(bodies, keys: coefficients, threads: threads) { ptrs, cs, p in
            var acc = Double(ptrs[0][p]) * cs[0]
            var i = 1
            while i < cs.count { acc += Double(ptrs[i][p]) * cs[i]; i += 1 }
            return Float(acc / divisor)
        }
    }

    /// `element(members, keys, p)` for every parameter index p, over the members whose key is non-zero
    /// in the canonical order (so results do not depend on the listing order), in parallel chunks;
    /// all zeros when every key is zero.
    static func elementwise(_ bodies: [UnsafeBufferPointer<Float>], keys: [Double], threads: Int,
                            _ element: @escaping @Sendable (MixPointers, [Double], Int) -> Float) -> [Float] {
        let n = bodies[0].count
        let order = canonicalOrder(bodies, keys: keys).filter { keys[$0] != 0 }
        var out = [Float](repeating: 0, count: n)
        guard !order.isEmpty else { return out }
        let ptrs = MixPointers(order.map { bodies[$0].baseAddress! }), ks = order.map { keys[$0] }
        out.withUnsafeMutableBufferPointer { o in
            let dst = MixMutablePointer(o.baseAddress!)
            parallelChunks(n, threads: threads) { range in
                for p in range { dst.p[p] = element(ptrs, ks, p) }
            }
        }
        return out
    }
}

// MARK: - Threads

/// Pointers handed to worker threads that each touch disjoint elements (or only read).
struct MixPointers: @unchecked Sendable {
    let items: [UnsafePointer<Float>]
    init(_ items: [UnsafePointer<Float>]) { self.items = items }
    subscript(i: Int) -> UnsafePointer<Float> { items[i] }
}

struct MixMutablePointer<T>: @unchecked Sendable {
    let p: UnsafeMutablePointer<T>
    init(_ p: UnsafeMutablePointer<T>) { self.p = p }
}

/// Runs `body` on contiguous chunks of 0..<n on up to `threads` threads (one chunk per thread).
func parallelChunks(_ n: Int, threads: Int, minimum: Int = 1 << 16, _ body: @Sendable (Range<Int>) -> Void) {
    let t = max(1, min(threads, n / max(minimum, 1)))
    if t <= 1 { body(0..<n); return }
    let per = (n + t - 1) / t
    DispatchQueue.concurrentPerform(iterations: t) { i in
        let lo = i * per, hi = min(n, lo + per)
        if lo < hi { body(lo..<hi) }
    }
}
