/// The factor `s` of docs/design.md §11 by which every emulated duration (a step's compute, a link's
/// serialisation and propagation) is multiplied: `s < 1` runs an experiment faster than the
/// devices it emulates. Broker overhead is real and is never scaled, so at small `s` it weighs
/// more than it would on the emulated system; reports say so.
public struct TimeScale: Sendable, Hashable, CustomStringConvertible {
    public let factor: Double

    /// Real time: durations as the emulated devices would take them.
    public static let real = TimeScale(validated: 1)

    private init(validated factor: Double) {
        self.factor = factor
    }

    /// Refuses a factor that is not a finite number > 0, naming `source` (a flag).
    public init(_ factor: Double, source: String = "--time-scale") throws(EmulationError) {
        guard factor.isFinite, factor > 0 else {
            throw EmulationError("\(source): expected a number > 0 (1 = real time, 0.1 = ten times faster), got \(factor)")
        }
        self.factor = factor
    }

    /// Wall-clock seconds that emulate `seconds` on the device or link.
    public func wallSeconds(_ seconds: Double) -> Double { seconds * factor }

    /// Emulated seconds that `seconds` of wall-clock time stand for.
    public func emulatedSeconds(wall seconds: Double) -> Double { seconds / factor }

    public var description: String { "\(factor)" }

    /// The sentence every report of an emulated run carries.
    public var note: String {
        factor == 1
            ? "emulated durations at real time (time scale 1); broker overhead is real"
            : "emulated durations × \(factor) (time scale); broker overhead is real and unscaled, so it weighs \(Self.format(1 / factor))× more than on the emulated system"
    }

    private static func format(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e12 ? String(Int64(value)) : String(value)
    }
}

/// A refused emulation setting, with the flag or field that holds it.
public struct EmulationError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
