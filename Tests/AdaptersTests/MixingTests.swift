import Adapters
import Encoder
import Foundation
import Tensor
import XCTest

/// Mixing, FSD, pruning and merging on tiny adapters: the invariants and hand-computed values.
final class MixingTests: XCTestCase {
    // hidden 4, 2 layers: pfeiffer R = 2 has 2 × (8 + 2 + 8 + 4) = 44 body parameters.
    static let encoder = EncoderConfig(modelType: .roberta, vocabSize: 10, hiddenSize: 4, numHiddenLayers: 2, numAttentionHeads: 1,
                                       intermediateSize: 8, maxPositionEmbeddings: 16, typeVocabSize: 1)

    func make(_ method: AdapterMethod = .pfeiffer, bottleneck: Int = 2, rank: Int = 2, labels: [String] = ["a", "b"],
              encoder: EncoderConfig = MixingTests.encoder, seed: UInt64 = 1, body: [Float]? = nil, zeros: Int = 0) -> Adapter {
        let cfg = AdapterConfig(method: method, bottleneck: bottleneck, loraRank: rank, loraAlpha: Float(2 * rank))
        let a = Adapter.initialized(config: cfg, encoder: encoder, labels: labels, seed: seed)
        var rng = SplitMix64(seed: seed &* 7919 &+ 3)
        for i in 0..<a.layout.count { a.parameters.base[i] = 0.5 * rng.nextGaussian() }
        if zeros > 0 { for i in stride(from: 0, to: a.layout.bodyCount, by: zeros) { a.parameters.base[i] = i % 2 == 0 ? 0 : -0.0 } }
        if let body {
            precondition(body.count == a.layout.bodyCount)
            for (i, x) in body.enumerated() { a.parameters.base[i] = x }
        }
        return a
    }

    func member(_ a: Adapter, _ name: String, sha: String? = nil) -> MixMember { MixMember(name: name, adapter: a, baseModelSHA256: sha) }
    func bits(_ xs: [Float]) -> [UInt32] { xs.map(\.bitPattern) }
    func bits(_ a: Adapter) -> [UInt32] { Array(UnsafeBufferPointer(start: a.parameters.base, count: a.layout.count)).map(\.bitPattern) }
    func head(_ a: Adapter) -> [UInt32] { Array(UnsafeBufferPointer(start: a.parameters.base + a.layout.bodyCount, count: a.layout.count - a.layout.bodyCount)).map(\.bitPattern) }

    func naiveFSD(_ a: [Float], _ b: [Float]) -> Double {
        Double(zip(a, b).filter { Double($0) * Double($1) < 0 }.count) / Double(a.count)
    }

    func assertMixingError(_ needles: [String], file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void) {
        do {
            try body()
            XCTFail("expected a MixingError", file: file, line: line)
        } catch let e as MixingError {
            for n in needles { XCTAssertTrue(e.description.contains(n), "\"\(n)\" not in: \(e.description)", file: file, line: line) }
        } catch {
            XCTFail("unexpected error \(error)", file: file, line: line)
        }
    }

    // MARK: FSD

    func testLayoutBodySegments() {
        let p = make(.pfeiffer), h = make(.houlsby), l = make(.lora)
        XCTAssertEqual(p.layout.bodyCount, 44)
        XCTAssertEqual(p.layout.layerRanges, [0..<22, 22..<44])
        XCTAssertEqual(h.layout.bodyCount, 88)
        XCTAssertEqual(l.layout.bodyCount, 2 * 2 * (2 * 4 + 4 * 2))
        for a in [p, h, l] {
            XCTAssertEqual(a.layout.bodyTensors.map(\.range.count).reduce(0, +), a.layout.bodyCount)
            XCTAssertEqual(a.layout.layerRanges.map(\.count).reduce(0, +), a.layout.bodyCount)
            XCTAssertFalse(a.layout.bodyTensors.contains { $0.key.hasPrefix("heads.") })
        }
    }

    func testFSDHandComputed() throws {
        // a: all +1. b: −1 on 0..<11. c: 0 on 0..<4 (two of them −0.0), −1 on 4..<15, +1 after.
        let a = [Float](repeating: 1, count: 44)
        var b = a; for i in 0..<11 { b[i] = -1 }
        var c = a; for i in 0..<4 { c[i] = i < 2 ? -0.0 : 0 }; for i in 4..<15 { c[i] = -1 }
        let members = [member(make(body: a), "a"), member(make(body: b), "b"), member(make(body: c), "c")]
        let r = try Mixing.fsd(members)
        XCTAssertEqual(r.counts, [[0, 11, 11], [11, 0, 4], [11, 4, 0]])
        XCTAssertEqual(r.matrix[0][1], 0.25)
        XCTAssertEqual(r.matrix[1][2], 4.0 / 44)
        XCTAssertEqual(r.parameterCount, 44)
        // All differences lie in layer 0 (parameters 0..<22).
        XCTAssertEqual(r.layerParameterCounts, [22, 22])
        XCTAssertEqual(r.layerMatrices[0][0][1], 0.5)
        XCTAssertEqual(r.layerMatrices[1], [[0, 0, 0], [0, 0, 0], [0, 0, 0]])
        // Mean FSD: row mean over the other two.
        XCTAssertEqual(r.meanFSD[0], 0.25, accuracy: 1e-15)
        XCTAssertEqual(r.meanFSD[1], (11.0 + 4) / 44 / 2, accuracy: 1e-15)
        // The one-pair function and "weights changing direction" agree.
        XCTAssertEqual(Mixing.signDifferenceFraction(members[1].adapter.body, members[2].adapter.body), 4.0 / 44)
        XCTAssertEqual(Mixing.weightsChangingDirection(target: members[0].adapter, mixture: members[1].adapter), 0.25)
    }

    func testFSDMatchesNaiveCountAndIsASymmetricMatrix() throws {
        // Sizes that are not multiples of 64, zeros and −0.0 included, for all three methods.
        for (method, hidden) in [(AdapterMethod.pfeiffer, 12), (.houlsby, 20), (.lora, 12)] {
            let enc = EncoderConfig(modelType: .bert, vocabSize: 10, hiddenSize: hidden, numHiddenLayers: 3, numAttentionHeads: 1,
                                    intermediateSize: 8, maxPositionEmbeddings: 16, typeVocabSize: 1)
            let adapters = (0..<5).map { make(method, bottleneck: 3, rank: 3, encoder: enc, seed: UInt64(10 + $0), zeros: 3 + $0) }
            let r = try Mixing.fsd(adapters.enumerated().map { member($1, "m\($0)") }, threads: 2)
            for i in 0..<5 {
                XCTAssertEqual(r.matrix[i][i], 0)
                for j in 0..<5 {
                    XCTAssertEqual(r.matrix[i][j], r.matrix[j][i])
                    XCTAssertTrue((0...1).contains(r.matrix[i][j]))
                    XCTAssertEqual(r.matrix[i][j], naiveFSD(adapters[i].bodyValues, adapters[j].bodyValues), "\(method) \(i) \(j)")
                    XCTAssertEqual(r.layerCounts.map { $0[i][j] }.reduce(0, +), r.counts[i][j])
                    for (l, range) in adapters[0].layout.layerRanges.enumerated() {
                        let x = Array(adapters[i].bodyValues[range]), y = Array(adapters[j].bodyValues[range])
                        XCTAssertEqual(r.layerMatrices[l][i][j], naiveFSD(x, y), accuracy: 1e-15)
                    }
                }
            }
        }
    }

    func testSignPackCountsNonZeros() {
        let values: [Float] = (0..<200).map { (i: Int) -> Float in
            if i % 3 == 0 { return 0 }
            return i % 5 == 0 ? -0.0 : Float(i) - 100
        }
        let pack = values.withUnsafeBufferPointer { SignPack($0, segments: [0..<70, 70..<200]) }
        XCTAssertEqual(pack.nonzeroCount, values.filter { $0 != 0 }.count)
    }

    // MARK: Averaging

    func testMixingOneAdapterOrWeightsOneZeroGivesItBack() throws {
        for method in AdapterMethod.allCases {
            let x = make(method, seed: 3, zeros: 5), y = make(method, seed: 4), z = make(method, seed: 5)
            let target = member(make(method, labels: ["p", "q", "r"], seed: 9), "target")
            let modes: [LoRAMixMode] = method == .lora ? LoRAMixMode.allCases : [.separate]
            for mode in modes {
                var avg = MixOptions(strategy: .average); avg.loraMode = mode
                let one = try Mixing.mix(target: target, members: [member(x, "x")], options: avg)
                XCTAssertEqual(bits(one.adapter.bodyValues), bits(x.bodyValues), "\(method) \(mode)")
                XCTAssertEqual(head(one.adapter), head(target.adapter))
                XCTAssertEqual(one.adapter.labels, ["p", "q", "r"])
                for w in [[1.0, 0, 0], [3, 0, 0], [0, 0.25, 0]] {
                    var o = MixOptions(strategy: .weighted); o.weights = w; o.loraMode = mode
                    let m = try Mixing.mix(target: target, members: [member(x, "x"), member(y, "y"), member(z, "z")], options: o)
                    let expected = w[0] != 0 ? x : y
                    XCTAssertEqual(bits(m.adapter.bodyValues), bits(expected.bodyValues), "\(method) \(mode) \(w)")
                }
            }
            // Every strategy on one adapter (with its neutral parameters) gives it back.
            let single = [member(x, "x")]
            var ta = MixOptions(strategy: .taskArithmetic); ta.lambda = 1
            var ties = MixOptions(strategy: .ties); ties.density = 1
            var dare = MixOptions(strategy: .dare); dare.dropRate = 0
            var dareTies = MixOptions(strategy: .dareTies); dareTies.dropRate = 0
            var greedy = MixOptions(strategy: .greedyMin); greedy.l = 1
            let sparse = MixOptions(strategy: .sparse)
            for o in [ta, ties, dare, dareTies, greedy, sparse] {
                let m = try Mixing.mix(target: target, members: single, options: o)
                XCTAssertEqual(bits(m.adapter.bodyValues), bits(x.bodyValues), "\(method) \(o.strategy)")
            }
        }
    }

    func testAverageIsOrderIndependentAndTheMean() throws {
        let adapters = (0..<4).map { make(.houlsby, seed: UInt64(20 + $0)) }
        let weights = [0.3, 1.7, 0.1, 2.9]
        let target = member(adapters[0], "t")
        var reference: [UInt32]?, weightedReference: [UInt32]?
        func permutations(_ a: [Int]) -> [[Int]] {
            a.count <= 1 ? [a] : a.indices.flatMap { i in permutations(a.enumerated().filter { $0.offset != i }.map(\.element)).map { [a[i]] + $0 } }
        }
        for p in permutations([0, 1, 2, 3]) {
            let ms = p.map { member(adapters[$0], "m\($0)") }
            let avg = try Mixing.mix(target: target, members: ms, options: MixOptions(strategy: .average))
            if let reference { XCTAssertEqual(bits(avg.adapter.bodyValues), reference, "order \(p)") } else { reference = bits(avg.adapter.bodyValues) }
            var o = MixOptions(strategy: .weighted); o.weights = p.map { weights[$0] }
            let w = try Mixing.mix(target: target, members: ms, options: o)
            if let weightedReference { XCTAssertEqual(bits(w.adapter.bodyValues), weightedReference, "order \(p)") } else { weightedReference = bits(w.adapter.bodyValues) }
        }
        let mean = (0..<adapters[0].layout.bodyCount).map { i in Float(adapters.map { Double($0.body[i]) }.reduce(0, +) / 4) }
        XCTAssertEqual(reference, bits(mean))
        // Other strategies are order-independent too.
        for s in [MixStrategy.ties, .dare, .dareTies, .sparse, .taskArithmetic] {
            var o = MixOptions(strategy: s); o.seed = 5
            let a = try Mixing.mix(target: target, members: [0, 1, 2, 3].map { member(adapters[$0], "m\($0)") }, options: o)
            let b = try Mixing.mix(target: target, members: [3, 1, 0, 2].map { member(adapters[$0], "m\($0)") }, options: o)
            XCTAssertEqual(bits(a.adapter.bodyValues), bits(b.adapter.bodyValues), "\(s)")
        }
    }

    func testMixtureCarriesTheTargetHeadAndRecord() throws {
        let x = make(labels: ["a", "b", "c"], seed: 1), y = make(seed: 2)
        let t = make(labels: ["ham", "spam"], seed: 3)
        let r = try Mixing.mix(target: member(t, "dir/t"), members: [member(x, "dir/x"), member(y, "dir/y")], options: MixOptions(strategy: .average))
        XCTAssertEqual(r.adapter.labels, ["ham", "spam"])
        XCTAssertEqual(head(r.adapter), head(t))
        XCTAssertEqual(r.record["strategy"] as? String, "average")
        XCTAssertEqual(r.record["members"] as? [String], ["dir/x", "dir/y"])
        XCTAssertEqual(r.record["target"] as? String, "dir/t")
        XCTAssertEqual(r.weightsChangingDirection, naiveFSD(t.bodyValues, r.adapter.bodyValues))
    }

    // MARK: LoRA

    func maxRelative(_ a: [Double], _ b: [Double]) -> Double {
        let scale = max(b.map(abs).max() ?? 0, 1e-30)
        return zip(a, b).map { abs($0 - $1) }.max()! / scale
    }

    func testLoRADeltaModesAgainstADenseComputation() throws {
        let enc = EncoderConfig(modelType: .roberta, vocabSize: 10, hiddenSize: 8, numHiddenLayers: 2, numAttentionHeads: 1,
                                intermediateSize: 8, maxPositionEmbeddings: 16, typeVocabSize: 1)
        let adapters = (0..<3).map { make(.lora, rank: 2, encoder: enc, seed: UInt64(40 + $0)) }
        let weights = [0.5, 1.5, 2.0]
        let ms = adapters.enumerated().map { member($1, "l\($0)") }
        func dense(_ l: Int, _ t: String) -> [Double] {
            let ds = adapters.map { Mixing.loraDelta($0, layer: l, target: t) }
            let total = weights.reduce(0, +)
            return (0..<ds[0].count).map { (p: Int) -> Double in
                var s = 0.0
                for (d, w) in zip(ds, weights) { s += d[p] * w }
                return s / total
            }
        }
        var o = MixOptions(strategy: .weighted); o.weights = weights
        o.loraMode = .delta
        let delta = try Mixing.mix(target: ms[0], members: ms, options: o)
        XCTAssertEqual(delta.adapter.config.loraRank, 6)
        XCTAssertEqual(delta.adapter.config.loraScaling, adapters[0].config.loraScaling)
        XCTAssertNil(delta.weightsChangingDirection)
        o.loraMode = .separate
        let separate = try Mixing.mix(target: ms[0], members: ms, options: o)
        for l in 0..<2 {
            for t in ["query", "value"] {
                XCTAssertLessThan(maxRelative(Mixing.loraDelta(delta.adapter, layer: l, target: t), dense(l, t)), 1e-6, "exact ΔW \(l) \(t)")
                // Averaging A and B separately is not the average ΔW (cross terms).
                XCTAssertGreaterThan(maxRelative(Mixing.loraDelta(separate.adapter, layer: l, target: t), dense(l, t)), 1e-2)
            }
        }
        // The stacked adapter round-trips through a folder as a normal LoRA of rank k·r.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mix-lora-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try delta.adapter.save(to: dir, name: "mix", encoder: enc, domain: "d", baseModelSHA256: String(repeating: "ab", count: 32), seed: 0)
        let (back, _) = try Adapter.load(from: dir, encoder: enc, expectedBaseSHA256: nil)
        XCTAssertEqual(back.config.loraRank, 6)
        XCTAssertEqual(bits(back), bits(delta.adapter))

        // delta-svd: the best rank-r approximation; exact when the sum has rank ≤ r (members sharing A).
        let shared = (0..<3).map { i -> Adapter in
            let a = make(.lora, rank: 2, encoder: enc, seed: UInt64(60 + i))
            for t in a.layout.bodyTensors where t.key.hasSuffix("lora_A") {
                for p in t.range { a.parameters.base[p] = adapters[0].parameters.base[p] }
            }
            return a
        }
        let sm = shared.enumerated().map { member($1, "s\($0)") }
        o.loraMode = .deltaSVD
        let svd = try Mixing.mix(target: sm[0], members: sm, options: o)
        XCTAssertEqual(svd.adapter.config.loraRank, 2)
        for l in 0..<2 {
            for t in ["query", "value"] {
                let ds = shared.map { Mixing.loraDelta($0, layer: l, target: t) }
                let want = (0..<ds[0].count).map { (p: Int) -> Double in
                    var s = 0.0
                    for (d, w) in zip(ds, weights) { s += d[p] * w }
                    return s / 4
                }
                XCTAssertLessThan(maxRelative(Mixing.loraDelta(svd.adapter, layer: l, target: t), want), 1e-5, "rank-r sum refactored exactly")
            }
        }
    }

    func testTruncatedFactorizationIsExactOrEckartYoung() {
        var rng = SplitMix64(seed: 77)
        let m = 9, n = 7
        for (k, rank) in [(3, 3), (3, 5), (6, 2), (6, 6), (8, 1)] {
            let b = (0..<(m * k)).map { _ in Double(rng.nextGaussian()) }, a = (0..<(k * n)).map { _ in Double(rng.nextGaussian()) }
            var M = [Double](repeating: 0, count: m * n)
            for r in 0..<m { for i in 0..<k { for c in 0..<n { M[r * n + c] += b[r * k + i] * a[i * n + c] } } }
            let f = Mixing.truncatedFactorization(b: b, a: a, m: m, k: k, n: n, rank: rank)
            var P = [Double](repeating: 0, count: m * n)
            for r in 0..<m { for t in 0..<rank { for c in 0..<n { P[r * n + c] += f.b[r * rank + t] * f.a[t * n + c] } } }
            let err2 = zip(M, P).map { ($0 - $1) * ($0 - $1) }.reduce(0, +), norm2 = M.map { $0 * $0 }.reduce(0, +)
            let sigma2 = f.singularValues.map { $0 * $0 }
            XCTAssertEqual(sigma2.reduce(0, +), norm2, accuracy: 1e-9 * norm2, "‖M‖² = Σσ²")
            let tail = sigma2.dropFirst(rank).reduce(0, +)
            XCTAssertEqual(err2, tail, accuracy: 1e-9 * norm2, "k \(k) rank \(rank): error² = Σ_{t>r} σ²")
            if rank >= min(k, m, n) { XCTAssertLessThan(err2, 1e-20 * norm2) }
            // Balanced factors: ‖row t of A′‖ = ‖column t of B′‖ = √σ_t.
            for t in 0..<min(rank, f.singularValues.count) {
                let ra = (0..<n).map { f.a[t * n + $0] * f.a[t * n + $0] }.reduce(0, +).squareRoot()
                XCTAssertEqual(ra, f.singularValues[t].squareRoot(), accuracy: 1e-9)
            }
        }
    }

    func testSymmetricEigen() {
        var rng = SplitMix64(seed: 5)
        let n = 6
        var a = [Double](repeating: 0, count: n * n)
        for i in 0..<n { for j in i..<n { let x = Double(rng.nextGaussian()); a[i * n + j] = x; a[j * n + i] = x } }
        let (values, v) = Mixing.symmetricEigen(a, n: n)
        XCTAssertEqual(values, values.sorted(by: >))
        for j in 0..<n {
            for i in 0..<n {
                let av = (0..<n).map { a[i * n + $0] * v[$0 * n + j] }.reduce(0, +)
                XCTAssertEqual(av, values[j] * v[i * n + j], accuracy: 1e-12)
                let dot = (0..<n).map { v[$0 * n + i] * v[$0 * n + j] }.reduce(0, +)
                XCTAssertEqual(dot, i == j ? 1 : 0, accuracy: 1e-12)
            }
        }
    }

    // MARK: Pruning

    func testPruningKeepsExactlyTheExpectedCountWithDeterministicTies() throws {
        // Magnitudes with many ties, both signs.
        let a = make(.houlsby, bottleneck: 3)
        let n = a.layout.bodyCount
        for i in 0..<n { a.parameters.base[i] = Float((i * 7) % 5) * (i % 2 == 0 ? 1 : -1) }
        for scope in PruningScope.allCases {
            for s in [0.0, 0.1, 0.25, 0.5, 0.9, 0.999, 1.0] {
                let (p, zeroed) = try Mixing.prune(a, sparsity: s, scope: scope)
                let groups = Mixing.pruningGroups(a.layout, scope: scope)
                XCTAssertEqual(zeroed, groups.map { Mixing.prunedCount($0.count, sparsity: s) }.reduce(0, +))
                XCTAssertEqual(head(p), head(a), "the head is never pruned")
                let body = p.bodyValues, orig = a.bodyValues
                for g in groups {
                    let q = Mixing.prunedCount(g.count, sparsity: s)
                    // Kept = the g.count − q largest magnitudes, ties to the lower index: an explicit ranking.
                    let ranked = g.sorted { abs(orig[$0]) != abs(orig[$1]) ? abs(orig[$0]) > abs(orig[$1]) : $0 < $1 }
                    let kept = Set(ranked.prefix(g.count - q))
                    for i in g { XCTAssertEqual(body[i].bitPattern, kept.contains(i) ? orig[i].bitPattern : Float(0).bitPattern, "\(scope) s \(s) i \(i)") }
                }
            }
        }
        XCTAssertEqual(Mixing.prunedCount(10, sparsity: 0.9), 9)
        XCTAssertEqual(Mixing.prunedCount(100, sparsity: 0.29), 29)
        XCTAssertEqual(Mixing.prunedCount(3, sparsity: 0.5), 2)  // 1.5 rounds away from zero
        // All equal magnitudes: the first half is kept.
        let flat = make(body: [Float](repeating: -2, count: 44))
        let half = try Mixing.prune(flat, sparsity: 0.5, scope: .adapter).adapter.bodyValues
        XCTAssertEqual(half, [Float](repeating: -2, count: 22) + [Float](repeating: 0, count: 22))
        assertMixingError(["sparsity"]) { _ = try Mixing.prune(flat, sparsity: 1.5, scope: .adapter) }
    }

    // MARK: Merging

    func testTIES() throws {
        let x = make(.pfeiffer, seed: 8, zeros: 4)
        for i in stride(from: 1, to: 44, by: 6) { x.parameters.base[i] = -0.0 }
        var o = MixOptions(strategy: .ties); o.density = 1
        let same = try Mixing.mix(target: member(x, "x"), members: [member(x, "a"), member(x, "b"), member(x, "c")], options: o)
        XCTAssertEqual(bits(same.adapter.bodyValues), bits(x.bodyValues), "TIES of identical adapters is the adapter")
        // With a trim, identical adapters give the trimmed adapter.
        o.density = 0.3
        let trimmed = try Mixing.mix(target: member(x, "x"), members: [member(x, "a"), member(x, "b")], options: o)
        XCTAssertEqual(bits(trimmed.adapter.bodyValues), bits(try Mixing.prune(x, sparsity: 0.7, scope: .adapter).adapter.bodyValues))
        // Hand-computed: three members on three parameters (the rest 0), no trim.
        func body(_ v: [Float]) -> Adapter { make(body: v + [Float](repeating: 0, count: 41)) }
        let ms = [member(body([1, -2, 3]), "p"), member(body([2, 1, -1]), "q"), member(body([-4, 1, 1]), "r")]
        o.density = 1
        let r = try Mixing.mix(target: ms[0], members: ms, options: o)
        // mass [-1, 0, 3]: elected [−, none, +]; means of the agreeing entries [-4, 0, (3 + 1)/2].
        XCTAssertEqual(Array(r.adapter.bodyValues.prefix(3)), [-4, 0, 2])
        o.lambda = 0.5
        XCTAssertEqual(Array(try Mixing.mix(target: ms[0], members: ms, options: o).adapter.bodyValues.prefix(3)), [-2, 0, 1])
        // Weighted: w = [1, 1, 3] → mass [-9, 2, 5]; p1 agreeing q, r: (1·1 + 3·1)/4 = 1; p2 agreeing p, r: (3 + 3)/4 = 1.5.
        o.lambda = 1; o.weights = [1, 1, 3]
        XCTAssertEqual(Array(try Mixing.mix(target: ms[0], members: ms, options: o).adapter.bodyValues.prefix(3)), [-4, 1, 1.5])
        // Trim at density 2/3 per tensor ranks within each tensor.
        XCTAssertEqual(Mixing.pruningGroups(x.layout, scope: .tensor).count, 8)
    }

    func testDARE() throws {
        let x = make(.houlsby, seed: 11, zeros: 7)
        XCTAssertEqual(bits(Mixing.dare(x.body, p: 0, seed: 1)), bits(x.bodyValues), "p = 0 returns the input")
        let d1 = Mixing.dare(x.body, p: 0.5, seed: 42), d2 = Mixing.dare(x.body, p: 0.5, seed: 42), d3 = Mixing.dare(x.body, p: 0.5, seed: 43)
        XCTAssertEqual(bits(d1), bits(d2), "seeded: reproducible")
        XCTAssertNotEqual(bits(d1), bits(d3))
        let dropped = zip(d1, x.bodyValues).filter { $0.0 == 0 && $0.1 != 0 }.count
        let nonzero = x.bodyValues.filter { $0 != 0 }.count
        XCTAssertEqual(Double(dropped) / Double(nonzero), 0.5, accuracy: 0.15)
        for (d, v) in zip(d1, x.bodyValues) where d != 0 { XCTAssertEqual(d, v * 2, "survivors rescaled by 1/(1 − p)") }
        // As strategies: p = 0 gives task arithmetic / TIES's elect-and-merge.
        let ms = (0..<3).map { member(make(.houlsby, seed: UInt64(30 + $0)), "m\($0)") }
        var dare = MixOptions(strategy: .dare); dare.dropRate = 0; dare.lambda = 0.25
        var ta = MixOptions(strategy: .taskArithmetic); ta.lambda = 0.25
        XCTAssertEqual(bits(try Mixing.mix(target: ms[0], members: ms, options: dare).adapter.bodyValues),
                       bits(try Mixing.mix(target: ms[0], members: ms, options: ta).adapter.bodyValues))
        var dt = MixOptions(strategy: .dareTies); dt.dropRate = 0
        var ties = MixOptions(strategy: .ties); ties.density = 1
        XCTAssertEqual(bits(try Mixing.mix(target: ms[0], members: ms, options: dt).adapter.bodyValues),
                       bits(try Mixing.mix(target: ms[0], members: ms, options: ties).adapter.bodyValues))
        // Seeded strategies are reproducible and the seed matters.
        dt.dropRate = 0.3; dt.seed = 9
        let a = try Mixing.mix(target: ms[0], members: ms, options: dt), b = try Mixing.mix(target: ms[0], members: ms, options: dt)
        XCTAssertEqual(bits(a.adapter.bodyValues), bits(b.adapter.bodyValues))
        dt.seed = 10
        XCTAssertNotEqual(bits(a.adapter.bodyValues), bits(try Mixing.mix(target: ms[0], members: ms, options: dt).adapter.bodyValues))
        XCTAssertEqual(a.record["seed"] as? Int, 9)
    }

    func testTaskArithmetic() throws {
        let ms = (0..<3).map { member(make(seed: UInt64(50 + $0)), "m\($0)") }
        var o = MixOptions(strategy: .taskArithmetic); o.lambda = 0.5; o.weights = [1, -1, 2]
        let r = try Mixing.mix(target: ms[0], members: ms, options: o).adapter.bodyValues
        for i in 0..<44 {
            let want = 0.5 * (Double(ms[0].adapter.body[i]) - Double(ms[1].adapter.body[i]) + 2 * Double(ms[2].adapter.body[i]))
            XCTAssertEqual(Double(r[i]), want, accuracy: 1e-6)
        }
        // λ = 1/k with unit weights is the average.
        var third = MixOptions(strategy: .taskArithmetic); third.lambda = 1.0 / 3
        let avg = try Mixing.mix(target: ms[0], members: ms, options: MixOptions(strategy: .average)).adapter.bodyValues
        for (x, y) in zip(try Mixing.mix(target: ms[0], members: ms, options: third).adapter.bodyValues, avg) { XCTAssertEqual(x, y, accuracy: 1e-6) }
    }

    // MARK: Greedy and sparse

    func testGreedySelection() {
        let s: [[Double]] = [[0, 0.1, 0.5, 0.4],
                             [0.1, 0, 0.2, 0.3],
                             [0.5, 0.2, 0, 0.6],
                             [0.4, 0.3, 0.6, 0]]
        // Mean FSD: [1.0, 0.6, 1.3, 1.3] / 3.
        XCTAssertEqual(Mixing.greedySelection(s, l: 2, mode: .minimum), [1, 0])
        XCTAssertEqual(Mixing.greedySelection(s, l: 2, mode: .maximum), [2, 3])  // tie: pool order
        XCTAssertEqual(Mixing.greedySelection(s, l: 3, mode: .targetAnchored, target: 2), [2, 1, 0])
        XCTAssertEqual(Mixing.greedySelection(s, l: 1, mode: .targetAnchored, target: 3), [3])
    }

    func testGreedyStrategiesOnAdapters() throws {
        // c flips every sign of a; b agrees with a except on a few.
        let a = make(seed: 70)
        let b = make(body: a.bodyValues.enumerated().map { $0.offset < 5 ? -$0.element : $0.element })
        let c = make(body: a.bodyValues.map { -$0 })
        let ms = [member(a, "a"), member(b, "b"), member(c, "c")]
        var o = MixOptions(strategy: .greedyMin); o.l = 2
        // Mean FSD: a (5/44 + 1)/2, b (5/44 + 39/44)/2, c (1 + 39/44)/2.
        XCTAssertEqual(try Mixing.mix(target: ms[0], members: ms, options: o).selected, ["b", "a"])
        o.strategy = .greedyMax
        XCTAssertEqual(try Mixing.mix(target: ms[0], members: ms, options: o).selected, ["c", "a"])
        o.strategy = .greedyTarget
        XCTAssertEqual(try Mixing.mix(target: ms[2], members: ms, options: o).selected, ["c", "b"])
        XCTAssertEqual(try Mixing.mix(target: ms[0], members: [ms[1], ms[2]], options: o).selected, ["a", "b"])
        o.l = 4
        assertMixingError(["l = 4", "3"]) { _ = try Mixing.mix(target: ms[0], members: ms, options: o) }
    }

    func testSparseMixingPrunesTheMostConflictingLayers() throws {
        // x and y agree in layer 0 and disagree everywhere in layer 1; z agrees with x.
        let x = make(seed: 80)
        let yBody = x.bodyValues.enumerated().map { $0.offset >= 22 ? -$0.element : $0.element }
        let y = make(body: yBody), z = make(body: x.bodyValues.map { $0 * 2 })
        let ms = [member(x, "x"), member(y, "y"), member(z, "z")]
        var o = MixOptions(strategy: .sparse); o.pruneLayers = 1; o.sparsity = 0.9
        let r = try Mixing.mix(target: ms[0], members: ms, options: o)
        XCTAssertEqual(r.prunedLayers, ["x": [1], "y": [1], "z": [1]])
        // Expected: each member's layer 1 pruned to 90% (per layer), then averaged.
        let pruned = ms.map { m -> [Float] in
            var b = m.adapter.bodyValues
            b.withUnsafeMutableBufferPointer { _ = Mixing.magnitudePrune($0, groups: [22..<44], sparsity: 0.9) }
            return b
        }
        let want = (0..<44).map { i in Float(pruned.map { Double($0[i]) }.reduce(0, +) / 3) }
        XCTAssertEqual(bits(r.adapter.bodyValues), bits(want))
        XCTAssertEqual(r.adapter.bodyValues[22..<44].filter { $0 != 0 }.count, 2, "the same 2 of 22 survive in every member")
        o.pruneLayers = 0
        XCTAssertEqual(try Mixing.mix(target: ms[0], members: ms, options: o).prunedLayers, ["x": [], "y": [], "z": []])
        o.pruneLayers = 3
        assertMixingError(["m = 3", "2"]) { _ = try Mixing.mix(target: ms[0], members: ms, options: o) }
    }

    // MARK: Refusals

    func testIncompatibleAdaptersRefuseToMixNamingThem() throws {
        let p = make(.pfeiffer), h = make(.houlsby), p4 = make(.pfeiffer, bottleneck: 4)
        let l2 = make(.lora, rank: 2), l3 = make(.lora, rank: 3)
        let avg = MixOptions(strategy: .average)
        assertMixingError(["out/p", "out/h", "methods", "pfeiffer", "houlsby"]) {
            _ = try Mixing.mix(target: member(p, "out/p"), members: [member(p, "out/p"), member(h, "out/h")], options: avg)
        }
        assertMixingError(["out/p", "out/p4", "bottleneck", "2", "4"]) { _ = try Mixing.fsd([member(p, "out/p"), member(p4, "out/p4")]) }
        assertMixingError(["out/l2", "out/l3", "LoRA ranks"]) {
            _ = try Mixing.mix(target: member(l2, "out/l2"), members: [member(l3, "out/l3")], options: avg)
        }
        let other = EncoderConfig(modelType: .roberta, vocabSize: 10, hiddenSize: 6, numHiddenLayers: 2, numAttentionHeads: 1,
                                  intermediateSize: 8, maxPositionEmbeddings: 16, typeVocabSize: 1)
        assertMixingError(["hidden sizes", "4", "6"]) { _ = try Mixing.fsd([member(p, "a"), member(make(encoder: other), "b")]) }
        let sha1 = String(repeating: "ab", count: 32), sha2 = String(repeating: "cd", count: 32)
        assertMixingError(["out/a", "out/b", "different base models"]) {
            _ = try Mixing.mix(target: member(p, "out/a", sha: sha1), members: [member(make(seed: 2), "out/b", sha: sha2)], options: avg)
        }
        // A folder that records no SHA-256 is not refused for it.
        XCTAssertNoThrow(try Mixing.fsd([member(p, "a", sha: sha1), member(make(seed: 2), "b")]))
        // Option errors.
        var o = MixOptions(strategy: .weighted); o.weights = [1]
        assertMixingError(["1 weights for 2 members"]) { _ = try Mixing.mix(target: member(p, "a"), members: [member(p, "a"), member(p, "b")], options: o) }
        o = MixOptions(strategy: .average); o.weights = [1, 1]
        assertMixingError(["weighted"]) { _ = try Mixing.mix(target: member(p, "a"), members: [member(p, "a"), member(p, "b")], options: o) }
        o = MixOptions(strategy: .average); o.loraMode = .delta
        assertMixingError(["LoRA"]) { _ = try Mixing.mix(target: member(p, "a"), members: [member(p, "a")], options: o) }
        o = MixOptions(strategy: .ties); o.density = 0
        assertMixingError(["density"]) { _ = try Mixing.mix(target: member(p, "a"), members: [member(p, "a")], options: o) }
        o = MixOptions(strategy: .dare); o.dropRate = 1
        assertMixingError(["p must be in [0, 1)"]) { _ = try Mixing.mix(target: member(p, "a"), members: [member(p, "a")], options: o) }
    }
}
