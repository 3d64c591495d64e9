/// A device's nominal figures: what the roofline of docs/design.md §5–6 needs to predict step times.
public struct DeviceFigures: Sendable, Hashable {
    /// Effective FLOP/s for the model's matrix multiplications (> 0).
    public var flops: Double
    /// Memory bandwidth in bytes/s, when the device is memory-bound for decode (> 0).
    public var memoryBandwidthBytesPerSecond: Double?
    /// Memory available for weights and KV cache.
    public var memoryBytes: Double

    public init(flops: Double, memoryBandwidthBytesPerSecond: Double?, memoryBytes: Double) {
        self.flops = flops
        self.memoryBandwidthBytesPerSecond = memoryBandwidthBytesPerSecond
        self.memoryBytes = memoryBytes
    }
}

/// Device classes a topology file may name (`"device": "t4"`) instead of giving figures.
///
/// `flops` is the vendor's dense (no sparsity) FP16 tensor throughput: an upper bound that decode
/// never reaches, because decode is memory-bound and the roofline's bandwidth term dominates.
/// Memory is the device's full capacity in GiB (part of it goes to the runtime in practice; a
/// topology file can give a smaller `memory_bytes` next to `device` to say so).
public enum DevicePreset: String, Sendable, CaseIterable {
    /// NVIDIA A100 40 GB SXM: 312 TFLOP/s FP16 tensor dense, 1,555 GB/s HBM2
    /// (NVIDIA A100 Tensor Core GPU datasheet, table "NVIDIA A100 specifications").
    case a100_40GB = "a100-40gb"
    /// NVIDIA A100 80 GB SXM: 312 TFLOP/s FP16 tensor dense, 2,039 GB/s HBM2e (same datasheet).
    case a100_80GB = "a100-80gb"
    /// NVIDIA T4: 65 TFLOP/s mixed-precision FP16/FP32 tensor, 320 GB/s GDDR6, 16 GB
    /// (NVIDIA T4 Tensor Core GPU datasheet).
    case t4 = "t4"
    /// NVIDIA GeForce RTX 3090: 71 TFLOP/s FP16 tensor with FP32 accumulate (dense), 936 GB/s GDDR6X,
    /// 24 GB (NVIDIA Ampere GA102 GPU architecture whitepaper, appendix table for the RTX 3090).
    case rtx3090 = "rtx-3090"
    /// NVIDIA L4: 121 TFLOP/s FP16 tensor dense (242 with sparsity), 300 GB/s GDDR6, 24 GB
    /// (NVIDIA L4 Tensor Core GPU datasheet).
    case l4 = "l4"
    /// NVIDIA Jetson AGX Orin 64 GB: 170 sparse INT8 TOPS on the GPU → 85 dense INT8 → 42.5 TFLOP/s
    /// dense FP16 tensor; 204.8 GB/s LPDDR5, 64 GB shared with the CPU (NVIDIA Jetson AGX Orin
    /// Series technical brief).
    case jetsonAGXOrin = "jetson-agx-orin"
    /// NVIDIA Jetson Orin Nano 8 GB: 40 sparse INT8 TOPS → 20 dense INT8 → 10 TFLOP/s dense FP16
    /// tensor; 68 GB/s LPDDR5, 8 GB shared with the CPU (NVIDIA Jetson Orin Nano Series datasheet).
    case jetsonOrinNano = "jetson-orin-nano"
    /// One-socket server CPU, AMD EPYC 7763 class: 64 cores × 2.45 GHz × 32 FP32 FLOP/cycle (two
    /// 256-bit FMA pipes) ≈ 5.0 TFLOP/s; 8 channels DDR4-3200 = 204.8 GB/s; 256 GiB installed
    /// (AMD EPYC 7763 product page; DDR4-3200 = 25.6 GB/s per channel).
    case serverCPU = "server-cpu"

    private static let gib = 1_073_741_824.0

    public var figures: DeviceFigures {
        switch self {
        case .a100_40GB:
            DeviceFigures(flops: 312e12, memoryBandwidthBytesPerSecond: 1555e9, memoryBytes: 40 * Self.gib)
        case .a100_80GB:
            DeviceFigures(flops: 312e12, memoryBandwidthBytesPerSecond: 2039e9, memoryBytes: 80 * Self.gib)
        case .t4:
            DeviceFigures(flops: 65e12, memoryBandwidthBytesPerSecond: 320e9, memoryBytes: 16 * Self.gib)
        case .rtx3090:
            DeviceFigures(flops: 71e12, memoryBandwidthBytesPerSecond: 936e9, memoryBytes: 24 * Self.gib)
        case .l4:
            DeviceFigures(flops: 121e12, memoryBandwidthBytesPerSecond: 300e9, memoryBytes: 24 * Self.gib)
        case .jetsonAGXOrin:
            DeviceFigures(flops: 42.5e12, memoryBandwidthBytesPerSecond: 204.8e9, memoryBytes: 64 * Self.gib)
        case .jetsonOrinNano:
            DeviceFigures(flops: 10e12, memoryBandwidthBytesPerSecond: 68e9, memoryBytes: 8 * Self.gib)
        case .serverCPU:
            DeviceFigures(flops: 5.0e12, memoryBandwidthBytesPerSecond: 204.8e9, memoryBytes: 256 * Self.gib)
        }
    }
}

extension DeviceFigures {
    /// The figures of a node running at `speed` × its nominal rate (telemetry's measured/predicted
    /// ratio, docs/design.md §7): compute and bandwidth scale, memory does not.
    public func scaled(bySpeed speed: Double) -> DeviceFigures {
        guard speed.isFinite, speed > 0 else { return self }
        return DeviceFigures(
            flops: flops * speed, memoryBandwidthBytesPerSecond: memoryBandwidthBytesPerSecond.map { $0 * speed },
            memoryBytes: memoryBytes)
    }
}
