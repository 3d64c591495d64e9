import Foundation

/// Which integer kernels run the quantized products.
///
/// `portable` is 128-bit SSE2 code (the default x86-64 target) and runs everywhere. `avx2` and
/// `avx512` are the wide kernels — one source compiled for LLVM's `haswell` (256-bit vectors) and
/// `cascadelake` (512-bit vectors with VNNI multiply-adds): batches of `MatMul.wideMinimumTokens(_:)`
/// tokens or more with tokens in vector lanes, and single tokens eight weight rows at a time. Each
/// is chosen only when the running CPU has every feature its code may use. All give bit-identical
/// results (exact integer sums, the same float steps per element), so the choice changes speed only.
public enum KernelSet: String, Sendable, CaseIterable, Comparable {
    case portable
    case avx2
    case avx512

    /// The widest set this CPU runs, or the one `HYPERION_KERNELS` names (`portable`, `avx2`,
    /// `avx512`) when the CPU runs it — else the widest below it that it runs.
    public static let best: KernelSet = {
        let widest = supported.last ?? .portable
        guard let name = ProcessInfo.processInfo.environment["HYPERION_KERNELS"], let asked = KernelSet(rawValue: name)
        else { return widest }
        return asked.runnable
    }()

    /// The sets this CPU runs, narrowest first (always `portable`).
    public static let supported: [KernelSet] = allCases.filter { $0.missingFlags.isEmpty }

    /// This set if the CPU runs it, else the widest narrower set it runs.
    public var runnable: KernelSet {
        KernelSet.supported.last { $0 <= self } ?? .portable
    }

    /// What `HYPERION_KERNELS` held when it did not name a set (nil when unset or valid), for
    /// commands that report the kernels they run.
    public static var unknownEnvironmentValue: String? {
        guard let name = ProcessInfo.processInfo.environment["HYPERION_KERNELS"], KernelSet(rawValue: name) == nil else {
            return nil
        }
        return name
    }

    /// CPU flags (as Linux names them in /proc/cpuinfo) of the instruction sets the set's module
    /// is compiled for: any of them may appear in its code.
    public var requiredFlags: [String] {
        let avx2 = ["sse4_2", "popcnt", "avx", "avx2", "fma", "f16c", "bmi1", "bmi2", "abm", "movbe"]
        switch self {
        case .portable: return []
        case .avx2: return avx2
        case .avx512: return avx2 + ["avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl", "avx512_vnni"]
        }
    }

    /// The flags this CPU lacks for the set (empty: it can run). Off x86-64 Linux, where the
    /// check is not made, every wide set lacks "x86-64 Linux".
    public var missingFlags: [String] {
        guard self != .portable else { return [] }
        #if arch(x86_64) && os(Linux)
        return requiredFlags.filter { !CPUFlags.current.contains($0) }
        #else
        return ["x86-64 Linux"]
        #endif
    }

    /// Human-readable: what runs on the set.
    public var summary: String {
        switch self {
        case .portable: return "portable (128-bit SSE2)"
        case .avx2: return "avx2 (256-bit: batches of 4+ tokens in vector lanes, 1-3 tokens on the single-token kernel, together in one pass over a row)"
        case .avx512: return "avx512 (512-bit VNNI: batches of 2+ tokens in vector lanes, one token on the single-token kernel)"
        }
    }

    public static func < (a: KernelSet, b: KernelSet) -> Bool { a.width < b.width }

    /// Vector bits of the set's widest code.
    public var width: Int {
        switch self {
        case .portable: return 128
        case .avx2: return 256
        case .avx512: return 512
        }
    }
}

/// The running CPU's feature flags, read once from /proc/cpuinfo (empty elsewhere).
enum CPUFlags {
    static let current: Set<String> = {
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") })
        else { return [] }
        return Set(line.split(separator: " ").map(String.init))
    }()
}
