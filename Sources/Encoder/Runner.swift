import Dispatch
import Foundation
import Synchronization
import Tensor

/// Runs an encoder over many sequences on several threads.
///
/// Sequences are sorted by length (longest first) and cut into dynamically padded batches; each
/// thread pulls the next batch and runs the whole forward pass with single-threaded BLAS in its
/// own workspace — no fork/join per GEMM, and results do not depend on the thread count.
public final class EncoderRunner: Sendable {
    public let model: EncoderModel
    public let threads: Int
    public let batchSize: Int
    /// Packed batches (no padding rows) or classic dynamic padding; same results.
    public let packed: Bool

    public init(model: EncoderModel, threads: Int = ProcessInfo.processInfo.activeProcessorCount, batchSize: Int = 32,
                packed: Bool = true) {
        self.model = model
        self.packed = packed
        self.threads = max(1, threads)
        self.batchSize = max(1, batchSize)
        BLAS.setThreads(1)
    }

    /// Index groups in length-sorted order; with fewer batches than threads, batches shrink so
    /// that every thread gets work.
    public func plan(lengths: [Int]) -> [[Int]] {
        let order = lengths.indices.sorted { (lengths[$0], $1) > (lengths[$1], $0) }
        guard !order.isEmpty else { return [] }
        let size = min(batchSize, max(1, (order.count + threads - 1) / threads))
        return stride(from: 0, to: order.count, by: size).map { Array(order[$0..<min($0 + size, order.count)]) }
    }

    /// Calls `body(batchIndices, batch, hidden)` for every batch, on worker threads. `body` must only
    /// touch outputs that belong to its own indices.
    /// With `profile`, each thread times its stages and the totals are added into it.
    public func run(_ encodings: [Encoding], padId: Int, profile: StageProfile? = nil,
                    body: @Sendable ([Int], EncoderBatch, UnsafeMutablePointer<Float>) -> Void) throws {
        let groups = plan(lengths: encodings.map(\.ids.count))
        let batches = groups.map { EncoderBatch($0.map { encodings[$0] }, padId: padId, packed: packed) }
        for batch in batches { try model.check(batch) }
        let next = Atomic<Int>(0)
        let model = self.model
        let workers = min(threads, batches.count)
        let totals = Mutex<[UInt64]>([UInt64](repeating: 0, count: StageProfile.Stage.allCases.count))
        let profiling = profile != nil
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            let ws = EncoderWorkspace(config: model.config)
            if profiling { ws.profile = StageProfile() }
            while true {
                let i = next.wrappingAdd(1, ordering: .relaxed).oldValue
                guard i < batches.count else { break }
                let hidden = model.forward(batches[i], workspace: ws)
                body(groups[i], batches[i], hidden)
            }
            if let p = ws.profile?.nanoseconds { totals.withLock { for i in $0.indices { $0[i] &+= p[i] } } }
        }
        if let profile { profile.add(totals.withLock { $0 }) }
    }

    /// Pooled sentence embeddings, in input order.
    public func embed(_ encodings: [Encoding], padId: Int, pooling: Pooling, normalize: Bool) throws -> [[Float]] {
        let C = model.config.hiddenSize
        let out = SharedFloats(count: encodings.count * C)
        let model = self.model
        try run(encodings, padId: padId) { indices, batch, hidden in
            for (b, i) in indices.enumerated() {
                model.pool(hidden, batch: batch, index: b, pooling: pooling, normalize: normalize, into: out.base + i * C)
            }
        }
        return (0..<encodings.count).map { i in Array(UnsafeBufferPointer(start: out.base + i * C, count: C)) }
    }

    /// Last hidden states (length × C, real tokens only), in input order.
    public func hiddenStates(_ encodings: [Encoding], padId: Int) throws -> [[Float]] {
        let C = model.config.hiddenSize
        let offsets = encodings.map(\.ids.count).reduce(into: [0]) { $0.append($0.last! + $1 * C) }
        let out = SharedFloats(count: offsets.last!)
        try run(encodings, padId: padId) { indices, batch, hidden in
            for (b, i) in indices.enumerated() {
                (out.base + offsets[i]).update(from: hidden + batch.rowStart[b] * C, count: batch.lengths[b] * C)
            }
        }
        return (0..<encodings.count).map { i in Array(UnsafeBufferPointer(start: out.base + offsets[i], count: offsets[i + 1] - offsets[i])) }
    }
}

/// A float buffer written by several threads at disjoint indices.
final class SharedFloats: @unchecked Sendable {
    let base: UnsafeMutablePointer<Float>
    init(count: Int) { base = .allocate(capacity: max(count, 1)); base.initialize(repeating: 0, count: max(count, 1)) }
    deinit { base.deallocate() }
}
