import Dispatch
import Foundation
import Synchronization

// FSD, the fraction of sign difference (the study's Alg. 3): for adapters a and b with N body parameters,
//
//     FSD(a, b) = #{ p : a_p · b_p < 0 } / N
//
// A zero on either side is no difference (0 · x is not < 0), and −0.0 counts as zero.
//
// Speed: each body is packed once into two bit vectors — "negative" (value < 0) and "non-zero" — and a
// pair then costs one XOR, two ANDs and a popcount per 64 parameters:
//
//     differ = (neg_a ^ neg_b) & nz_a & nz_b
//
// Each encoder layer is packed separately and padded with zeros to whole 64-bit words, so per-layer
// counts fall out of the same pass and padding never counts (its non-zero bits are 0).

/// An adapter body's signs packed into bits, layer by layer; immutable, shared by threads.
public final class SignPack: @unchecked Sendable {
    /// Body parameters (N).
    public let count: Int
    /// The parameter range of each segment (layer) in the body.
    public let segments: [Range<Int>]
    /// The word range of each segment in `negative` / `nonzero`.
    let wordRanges: [Range<Int>]
    let words: Int
    let negative: UnsafeMutablePointer<UInt64>
    let nonzero: UnsafeMutablePointer<UInt64>

    /// Packs `values`; `segments` must tile 0..<values.count in order (default: one segment).
    public init(_ values: UnsafeBufferPointer<Float>, segments: [Range<Int>]? = nil) {
        let segs = segments ?? [0..<values.count]
        precondition(segs.reduce(0) { $0 + $1.count } == values.count, "segments must tile the values")
        count = values.count
        self.segments = segs
        var ranges: [Range<Int>] = [], w = 0
        for s in segs {
            let n = (s.count + 63) / 64
            ranges.append(w..<(w + n)); w += n
        }
        wordRanges = ranges
        words = w
        negative = .allocate(capacity: max(w, 1))
        nonzero = .allocate(capacity: max(w, 1))
        for (s, r) in zip(segs, ranges) {
            Self.pack(values.baseAddress! + s.lowerBound, count: s.count, negative: negative + r.lowerBound, nonzero: nonzero + r.lowerBound)
        }
    }

    /// Packs an adapter's body, one segment per encoder layer.
    public convenience init(adapter: Adapter) {
        self.init(adapter.body, segments: adapter.layout.layerRanges.filter { !$0.isEmpty })
    }

    deinit { negative.deallocate(); nonzero.deallocate() }

    /// Packs `count` floats into ⌈count/64⌉ words of each kind. Within a word the bits are in an order
    /// of our own (a permutation that is the same for every body, so counts are unaffected): the floats
    /// are read in pairs as UInt64 lanes of a SIMD4, each lane's sign and non-zero bits tested at bits 31
    /// and 63 at once (SWAR), and the 32 pairs of a 64-float block shifted into place — pair 4i + j goes
    /// to bits 8j + i and 32 + 8j + i. About 4 G floats/s per core on baseline x86-64 (SSE2).
    static func pack(_ x: UnsafePointer<Float>, count: Int, negative: UnsafeMutablePointer<UInt64>, nonzero: UnsafeMutablePointer<UInt64>) {
        let full = count / 64
        let raw = UnsafeRawPointer(x)
        for w in 0..<full { packBlock(raw + w * 256, negative: negative + w, nonzero: nonzero + w) }
        let rest = count - full * 64
        if rest > 0 {
            var tail = [Float](repeating: 0, count: 64)
            for i in 0..<rest { tail[i] = x[full * 64 + i] }
            tail.withUnsafeBytes { packBlock($0.baseAddress!, negative: negative + full, nonzero: nonzero + full) }
        }
    }

    @inline(__always)
    static func packBlock(_ u: UnsafeRawPointer, negative: UnsafeMutablePointer<UInt64>, nonzero: UnsafeMutablePointer<UInt64>) {
        let magnitude = SIMD4<UInt64>(repeating: 0x7FFF_FFFF_7FFF_FFFF), top = SIMD4<UInt64>(repeating: 0x8000_0000_8000_0000)
        var neg = SIMD4<UInt64>(repeating: 0), nz = SIMD4<UInt64>(repeating: 0)
        for i in 0..<8 {
            let v = u.loadUnaligned(fromByteOffset: i * 32, as: SIMD4<UInt64>.self)
            // Per 32-bit half: magnitude + 0x7FFFFFFF carries into the half's top bit iff the magnitude is non-zero.
            let z = ((v & magnitude) &+ magnitude) & top
            nz |= z &>> UInt64(31 - i)
            neg |= (v & z) &>> UInt64(31 - i)
        }
        nonzero.pointee = nz[0] | (nz[1] << 8) | (nz[2] << 16) | (nz[3] << 24)
        negative.pointee = neg[0] | (neg[1] << 8) | (neg[2] << 16) | (neg[3] << 24)
    }

    /// Parameter pairs (p, p) of `a` and `b` whose product is negative, over the words `range`.
    @inline(__always)
    static func differences(_ a: SignPack, _ b: SignPack, words range: Range<Int>) -> Int {
        let na = a.negative, za = a.nonzero, nb = b.negative, zb = b.nonzero
        var c = 0
        for w in range { c &+= ((na[w] ^ nb[w]) & za[w] & zb[w]).nonzeroBitCount }
        return c
    }

    /// Non-zero parameters.
    public var nonzeroCount: Int { (0..<words).reduce(0) { $0 + nonzero[$1].nonzeroBitCount } }
}

/// The FSD of a set of adapters: the k × k matrix S over the whole body and the same per layer.
public struct FSDResult: Sendable, Equatable {
    /// The adapters' names, in input order.
    public var names: [String]
    /// Body parameters N.
    public var parameterCount: Int
    /// Parameters per layer.
    public var layerParameterCounts: [Int]
    /// counts[i][j] = #{p : θᵢ_p·θⱼ_p < 0} over the body.
    public var counts: [[Int]]
    /// layerCounts[l][i][j], the same over layer l.
    public var layerCounts: [[[Int]]]

    /// S[i][j] = counts[i][j] / N: symmetric, zero diagonal, in [0, 1].
    public var matrix: [[Double]] { counts.map { $0.map { Double($0) / Double(max(parameterCount, 1)) } } }

    /// S per layer: layerMatrices[l][i][j] = layerCounts[l][i][j] / N_l.
    public var layerMatrices: [[[Double]]] {
        zip(layerCounts, layerParameterCounts).map { c, n in c.map { $0.map { Double($0) / Double(max(n, 1)) } } }
    }

    /// The row mean of S over the other adapters, meanᵢ = Σ_{j≠i} S[i][j] / (k − 1) (0 for k = 1): how much
    /// adapter i conflicts with the rest, the ranking of greedy mixing (Alg. 1).
    public var meanFSD: [Double] { Self.rowMeans(matrix) }

    /// The same per layer: layerMeanFSD[l][i].
    public var layerMeanFSD: [[Double]] { layerMatrices.map(Self.rowMeans) }

    static func rowMeans(_ s: [[Double]]) -> [Double] {
        let k = s.count
        return (0..<k).map { i in k > 1 ? (0..<k).filter { $0 != i }.reduce(0.0) { $0 + s[i][$1] } / Double(k - 1) : 0 }
    }
}

extension Mixing {
    /// The FSD matrix of `members` (compatibility checked first), overall and per layer.
    public static func fsd(_ members: [MixMember], threads: Int = ProcessInfo.processInfo.activeProcessorCount) throws -> FSDResult {
        try checkCompatible(members)
        let packs = packAll(members.map(\.adapter), threads: threads)
        return fsd(packs: packs, names: members.map(\.name), threads: threads)
    }

    /// Packs every adapter's body (in parallel, one adapter per thread at a time).
    public static func packAll(_ adapters: [Adapter], threads: Int = ProcessInfo.processInfo.activeProcessorCount) -> [SignPack] {
        let slots = Mutex<[SignPack?]>([SignPack?](repeating: nil, count: adapters.count))
        let next = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: max(1, min(threads, adapters.count))) { _ in
            while true {
                let i = next.wrappingAdd(1, ordering: .relaxed).oldValue
                guard i < adapters.count else { break }
                let p = SignPack(adapter: adapters[i])
                slots.withLock { $0[i] = p }
            }
        }
        return slots.withLock { $0.map { $0! } }
    }

    /// The FSD matrix of packed bodies (all with the same segments). The words are walked in blocks of
    /// 1,024 (every adapter's block stays in the L2 cache while all pairs read it), blocks shared out
    /// among the threads.
    public static func fsd(packs: [SignPack], names: [String], threads: Int = ProcessInfo.processInfo.activeProcessorCount) -> FSDResult {
        let k = packs.count
        precondition(k == names.count && k > 0)
        let segs = packs[0].segments
        precondition(packs.allSatisfy { $0.segments == segs }, "bodies with different layouts")
        let L = segs.count
        let block = 1024
        var items: [(layer: Int, words: Range<Int>)] = []
        for (l, r) in packs[0].wordRanges.enumerated() {
            var w = r.lowerBound
            while w < r.upperBound { items.append((l, w..<min(w + block, r.upperBound))); w += block }
        }
        let T = max(1, min(threads, items.count))
        let results = Mutex<[Int]>([Int](repeating: 0, count: L * k * k))
        let work = items
        DispatchQueue.concurrentPerform(iterations: T) { t in
            var local = [Int](repeating: 0, count: L * k * k)
            var i = t
            while i < work.count {
                let (l, words) = work[i]
                for a in 0..<k {
                    for b in (a + 1)..<k where b < k {
                        local[(l * k + a) * k + b] &+= SignPack.differences(packs[a], packs[b], words: words)
                    }
                }
                i += T
            }
            results.withLock { r in for j in 0..<r.count { r[j] &+= local[j] } }
        }
        let flat = results.withLock { $0 }
        var layerCounts = [[[Int]]](repeating: [[Int]](repeating: [Int](repeating: 0, count: k), count: k), count: L)
        var counts = [[Int]](repeating: [Int](repeating: 0, count: k), count: k)
        for l in 0..<L {
            for a in 0..<k {
                for b in (a + 1)..<k where b < k {
                    let c = flat[(l * k + a) * k + b]
                    layerCounts[l][a][b] = c; layerCounts[l][b][a] = c
                    counts[a][b] += c; counts[b][a] += c
                }
            }
        }
        return FSDResult(names: names, parameterCount: packs[0].count, layerParameterCounts: segs.map(\.count),
                         counts: counts, layerCounts: layerCounts)
    }

    /// FSD of two bodies (same length): #{p : a_p·b_p < 0} / N.
    public static func signDifferenceFraction(_ a: UnsafeBufferPointer<Float>, _ b: UnsafeBufferPointer<Float>) -> Double {
        precondition(a.count == b.count)
        let pa = SignPack(a), pb = SignPack(b)
        return Double(SignPack.differences(pa, pb, words: 0..<pa.words)) / Double(max(a.count, 1))
    }

    /// "Weights changing direction": the fraction of the target adapter's body parameters whose sign the
    /// mixture flips, #{p : target_p · mixture_p < 0} / N — FSD(target, mixture). Nil when the bodies have
    /// different layouts (a LoRA mixture stacked to a higher rank).
    public static func weightsChangingDirection(target: Adapter, mixture: Adapter) -> Double? {
        guard target.layout.sameBody(as: mixture.layout) else { return nil }
        return signDifferenceFraction(target.body, mixture.body)
    }
}
