import ArgumentParser
import Foundation
import Tensor

@main
struct AdapterMix: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "adaptermix",
        abstract: "When and what to mix: domain adapters on a frozen encoder, on OpenBLAS.",
        version: "0.1.0",
        subcommands: [Embed.self, DataCommand.self, Train.self, Eval.self, FSDCommand.self, Mix.self, Prune.self,
                      SweepCommand.self, CoordinatorCommand.self, WorkerCommand.self, StatusCommand.self, ReportCommand.self, SimilarityCommand.self, KeysCommand.self, Bench.self]
    )

    static func main() {
        reexecWithBetterBLASKernel()
        main(nil)
    }

    /// OpenBLAS picks its kernel when the library loads, before any of our code runs; on CPUs newer
    /// than the installed OpenBLAS it falls back to a slow generic one. Then we restart once with
    /// `OPENBLAS_CORETYPE` set (never when the user set it; `ADAPTERMIX_NO_REEXEC=1` turns this off).
    static func reexecWithBetterBLASKernel() {
        let env = ProcessInfo.processInfo.environment
        guard env["ADAPTERMIX_NO_REEXEC"] == nil, let core = BLAS.recommendedCoreType() else { return }
        setenv("OPENBLAS_CORETYPE", core, 1)
        setenv("ADAPTERMIX_NO_REEXEC", "1", 1)
        let args = CommandLine.arguments.map { strdup($0) } + [nil]
        execv("/proc/self/exe", args)
        // execv only returns on failure: carry on with the kernel we have.
        unsetenv("OPENBLAS_CORETYPE")
    }
}
