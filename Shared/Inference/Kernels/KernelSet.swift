import Foundation

/// Which integer kernels run batched products.
///
/// `portable` is 128-bit SSE2 code (the default x86-64 target) and runs everywhere. `wide` uses
/// 512-bit vectors with AVX-512 VNNI multiply-adds, for batches of `MatMul.wideMinimumTokens`
/// tokens or more; it is compiled for such CPUs alone and chosen only when the running CPU has
/// every feature its code may use. Both give bit-identical results (exact integer sums, the same
/// float steps per element), so the choice changes speed only.
public enum KernelSet: String, Sendable, CaseIterable {
    case portable
    case wide

    /// `wide` when the CPU supports it, unless `HYPERION_KERNELS=portable`.
    public static let best: KernelSet = {
        if ProcessInfo.processInfo.environment["HYPERION_KERNELS"] == "portable" { return .portable }
        return WideKernelSupport.available ? .wide : .portable
    }()
}

/// Whether this CPU can run the wide kernels.
public enum WideKernelSupport {
    /// CPU flags (as Linux names them in /proc/cpuinfo) of the instruction sets the wide module is
    /// compiled for (LLVM's `cascadelake`): any of them may appear in its code.
    public static let requiredFlags = [
        "sse4_2", "popcnt", "avx", "avx2", "fma", "f16c", "bmi1", "bmi2", "abm", "movbe",
        "avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl", "avx512_vnni",
    ]

    /// The flags this CPU lacks (empty: the wide kernels can run). Always non-empty off x86-64
    /// Linux, where the check is not made.
    public static let missingFlags: [String] = {
        #if arch(x86_64) && os(Linux)
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") })
        else { return requiredFlags }
        let flags = Set(line.split(separator: " ").map(String.init))
        return requiredFlags.filter { !flags.contains($0) }
        #else
        return ["x86-64 Linux"]
        #endif
    }()

    /// Read once: every batched product asks.
    public static let available = missingFlags.isEmpty
}
