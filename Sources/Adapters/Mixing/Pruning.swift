import Foundation

/// Where magnitude pruning ranks the weights (reference tools disagree, so it is an option).
public enum PruningScope: String, CaseIterable, Sendable {
    /// The whole adapter body at once (global magnitude pruning).
    case adapter
    /// Each encoder layer's adapter tensors separately.
    case layer
    /// Each tensor separately (as torch.nn.utils.prune and PEFT / mergekit's per-tensor trims).
    case tensor
}

extension Mixing {
    /// The groups of the body that `scope` ranks separately.
    public static func pruningGroups(_ layout: AdapterLayout, scope: PruningScope) -> [Range<Int>] {
        switch scope {
        case .adapter: return [0..<layout.bodyCount]
        case .layer: return layout.layerRanges.filter { !$0.isEmpty }
        case .tensor: return layout.bodyTensors.map(\.range)
        }
    }

    /// How many of n weights pruning at sparsity s zeroes: round(s·n), halves rounded away from zero.
    public static func prunedCount(_ n: Int, sparsity: Double) -> Int {
        min(n, max(0, Int((sparsity * Double(n)).rounded(.toNearestOrAwayFromZero))))
    }

    /// Magnitude pruning (the study's Alg. 2), in place: in each group of n weights, the round(s·n) of
    /// smallest |w| become 0 and the rest are kept exactly. Ties in |w| are broken by position: among
    /// equal magnitudes the earlier weight (lower flat index) is kept. Returns how many weights were
    /// zeroed (weights that were already 0 count: they have the smallest magnitude).
    @discardableResult
    public static func magnitudePrune(_ values: UnsafeMutableBufferPointer<Float>, groups: [Range<Int>], sparsity: Double) -> Int {
        var zeroed = 0
        for g in groups {
            let n = g.count, q = prunedCount(n, sparsity: sparsity)
            zeroed += q
            if q == 0 { continue }
            if q == n { for p in g { values[p] = 0 }; continue }
            // A unique key per weight: |w| above, the reversed position below; the q smallest keys go.
            var keys = [UInt64](repeating: 0, count: n)
            for i in 0..<n {
                keys[i] = (UInt64(values[g.lowerBound + i].bitPattern & 0x7FFF_FFFF) << 32) | UInt64(UInt32.max - UInt32(i))
            }
            let threshold = keys.withUnsafeMutableBufferPointer { selectKth($0, q - 1) }
            for i in 0..<n {
                let key = (UInt64(values[g.lowerBound + i].bitPattern & 0x7FFF_FFFF) << 32) | UInt64(UInt32.max - UInt32(i))
                if key <= threshold { values[g.lowerBound + i] = 0 }
            }
        }
        return zeroed
    }

    /// The `kth` smallest (0-based) of distinct keys, by Hoare quickselect with a median-of-three pivot;
    /// reorders `a`.
    static func selectKth(_ a: UnsafeMutableBufferPointer<UInt64>, _ kth: Int) -> UInt64 {
        var lo = 0, hi = a.count - 1
        while lo < hi {
            let x = a[lo], y = a[lo + (hi - lo) / 2], z = a[hi]
            let pivot = max(min(x, y), min(max(x, y), z))
            var i = lo, j = hi
            while i <= j {
                while a[i] < pivot { i += 1 }
                while a[j] > pivot { j -= 1 }
                if i <= j { a.swapAt(i, j); i += 1; j -= 1 }
            }
            if kth <= j { hi = j } else if kth >= i { lo = i } else { return a[kth] }
        }
        return a[lo]
    }

    /// The adapter with its body pruned by magnitude at `sparsity` within each `scope` group; the head is
    /// never pruned. Returns it with the number of body weights zeroed.
    public static func prune(_ adapter: Adapter, sparsity: Double, scope: PruningScope) throws -> (adapter: Adapter, zeroed: Int) {
        guard sparsity.isFinite, sparsity >= 0, sparsity <= 1 else { throw MixingError("sparsity must be in [0, 1] (is \(sparsity))") }
        var body = adapter.bodyValues
        let zeroed = body.withUnsafeMutableBufferPointer { magnitudePrune($0, groups: pruningGroups(adapter.layout, scope: scope), sparsity: sparsity) }
        return (adapter.replacingBody(body), zeroed)
    }
}
