/// How a model's weights are stored, which fixes the bytes each weight costs in memory and in
/// memory traffic (docs/design.md §5: a quantised block of 32 weights carries its scale, hence 34/32 for
/// q8_0, 20/32 for q4_1, 18/32 for q4_0).
public enum WeightDType: String, Sendable, Hashable, CaseIterable {
    case f32
    case f16
    case q8_0
    case q4_1
    case q4_0

    public var bytesPerWeight: Double {
        switch self {
        case .f32: 4
        case .f16: 2
        case .q8_0: 34.0 / 32.0
        case .q4_1: 20.0 / 32.0
        case .q4_0: 18.0 / 32.0
        }
    }
}
