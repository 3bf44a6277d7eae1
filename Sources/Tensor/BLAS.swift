import CBLAS
import Foundation

/// Thin, typed wrappers over OpenBLAS's `cblas_sgemm` on contiguous row-major buffers.
///
/// Every matmul of the encoder goes through here, so the BLAS calling convention lives in one
/// place. Thread-safety: OpenBLAS may be called from several threads at once when its own
/// thread count is 1 (see `BLAS.setThreads`), which is how `ParallelEncoder` uses it.
public enum BLAS {
    /// Sets OpenBLAS's own thread pool size. AdapterMix parallelises over sequences itself and
    /// runs BLAS single-threaded inside each worker thread (no fork/join per GEMM).
    public static func setThreads(_ n: Int) { openblas_set_num_threads(Int32(max(1, n))) }

    public static var threads: Int { Int(openblas_get_num_threads()) }

    /// The kernel OpenBLAS chose at load time ("Haswell", "SkylakeX", "Prescott", …).
    public static var coreName: String { openblas_get_corename().map { String(cString: $0) } ?? "?" }

    /// A better `OPENBLAS_CORETYPE` when OpenBLAS fell back to a generic SSE kernel on a CPU it does
    /// not know (Debian's 0.3.21 predates Sapphire/Emerald Rapids and picks "Prescott" there, at a
    /// quarter of the speed), judged from the CPU flags in /proc/cpuinfo; nil when its choice stands
    /// or when the user set `OPENBLAS_CORETYPE` themselves.
    public static func recommendedCoreType(
        environment: [String: String] = ProcessInfo.processInfo.environment,
        cpuFlags: Set<Substring>? = nil, chosen: String = BLAS.coreName
    ) -> String? {
        guard environment["OPENBLAS_CORETYPE"] == nil else { return nil }
        let generic: Set<String> = ["Prescott", "Core2", "Nehalem", "Penryn", "Dunnington", "Atom", "Sandybridge"]
        guard generic.contains(chosen) else { return nil }
        let flags = cpuFlags ?? Self.cpuFlags()
        if flags.contains("avx512f"), flags.contains("avx512bw"), flags.contains("avx512vl") { return "SkylakeX" }
        if flags.contains("avx2"), flags.contains("fma") { return chosen == "Haswell" ? nil : "Haswell" }
        return nil
    }

    static func cpuFlags() -> Set<Substring> {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return [] }
        return Set(line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == ":" }))
    }

    /// OpenBLAS's build and kernel description, e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH ... SkylakeX".
    public static var configDescription: String {
        let config = openblas_get_config().map { String(cString: $0) } ?? "?"
        let core = openblas_get_corename().map { String(cString: $0) } ?? "?"
        return "\(config) (kernel: \(core))"
    }
}

/// out(M, N) = alpha · a(M, K) · b(K, N)ᵀ? … row-major, with explicit leading dimensions.
///
/// `transA` / `transB` say whether `a` / `b` are stored transposed. `beta` = 1 accumulates into
/// `out` (bias pre-filled, or gradients accumulated).
@inline(__always)
public func sgemm(
    _ out: UnsafeMutablePointer<Float>, ldc: Int,
    _ a: UnsafePointer<Float>, lda: Int, transA: Bool,
    _ b: UnsafePointer<Float>, ldb: Int, transB: Bool,
    m: Int, n: Int, k: Int, alpha: Float = 1, beta: Float = 0
) {
    cblas_sgemm(
        CblasRowMajor,
        transA ? CblasTrans : CblasNoTrans,
        transB ? CblasTrans : CblasNoTrans,
        Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, out, Int32(ldc))
}

/// A linear layer as PyTorch stores it: out(N, outDim) = input(N, inDim) · weight(outDim, inDim)ᵀ + bias.
///
/// The bias is broadcast into `out` first and the GEMM accumulates (beta = 1), so no extra pass.
public func linearForward(
    out: UnsafeMutablePointer<Float>,
    input: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
    rows: Int, inDim: Int, outDim: Int
) {
    if let bias {
        for r in 0..<rows { (out + r * outDim).update(from: bias, count: outDim) }
    }
    sgemm(out, ldc: outDim, input, lda: inDim, transA: false, weight, ldb: inDim, transB: true,
          m: rows, n: outDim, k: inDim, beta: bias == nil ? 0 : 1)
}
