import Foundation

/// One line of a chart: points joined in x order; `hollow` points are drawn as open circles
/// (the report uses them for load points a system could not keep up with).
struct ChartSeries {
    var name: String
    var color: String
    var points: [(x: Double, y: Double)]
    var hollow: [Bool] = []
    /// Drawn dashed (the report's ablations, so they stand apart from the systems they mix).
    var dashed = false
}

/// Inline SVG charts written by hand (no script, no external file), so the report is one
/// self-contained HTML file that any browser shows.
enum SVGChart {
    /// Where a chart draws: the plot area inside margins for tick labels and the legend.
    struct Geometry {
        var width = 560.0
        var height = 320.0
        var left = 70.0
        var right = 150.0
        var top = 30.0
        /// Room under the plot for tick labels (bar charts need more, for slanted names).
        var bottom = 50.0

        var plotX: (Double, Double) { (left, width - right) }
        var plotY: (Double, Double) { (height - bottom, top) }
    }

    /// A line chart; the y axis turns logarithmic when the values span more than 30×, so an
    /// overloaded baseline does not flatten every other line.
    static func line(
        title: String, xLabel: String, yLabel: String, series: [ChartSeries], xLog: Bool = false, yMin: Double? = nil,
        yMax: Double? = nil, forceLinearY: Bool = false
    ) -> String {
        let g = Geometry()
        let xs = series.flatMap { $0.points.map(\.x) }
        let ys = series.flatMap { $0.points.map(\.y) }.filter { $0.isFinite }
        guard let xLow = xs.min(), let xHigh = xs.max(), let yLowData = ys.min(), let yHighData = ys.max() else {
            return empty(title, g)
        }
        let positive = ys.filter { $0 > 0 }
        let yLog = !forceLinearY && (positive.min().map { (yHighData / $0) > 30 } ?? false)
        let xAxis = Axis(low: xLow, high: xHigh, log: xLog && xLow > 0, padToZero: false)
        let yAxis = Axis(
            low: yMin ?? (yLog ? (positive.min() ?? 1) : min(0, yLowData)), high: yMax ?? yHighData, log: yLog,
            padToZero: !yLog)
        var svg = header(title, g)
        svg += frame(g, xAxis: xAxis, yAxis: yAxis, xLabel: xLabel, yLabel: yLabel)
        for (index, line) in series.enumerated() {
            let points = line.points.enumerated().sorted { $0.element.x < $1.element.x }
            let path = points.map { "\(n(xAxis.position($0.element.x, g.plotX))),\(n(yAxis.position($0.element.y, g.plotY)))" }
            if path.count > 1 {
                svg += "<polyline fill=\"none\" stroke=\"\(line.color)\" stroke-width=\"2\"\(line.dashed ? " stroke-dasharray=\"6 3\"" : "") "
                    + "points=\"\(path.joined(separator: " "))\"/>"
            }
            if points.count <= 12 {
                for (offset, point) in points {
                    let hollow = offset < line.hollow.count && line.hollow[offset]
                    svg += "<circle cx=\"\(n(xAxis.position(point.x, g.plotX)))\" cy=\"\(n(yAxis.position(point.y, g.plotY)))\" r=\"3.5\" "
                        + "fill=\"\(hollow ? "white" : line.color)\" stroke=\"\(line.color)\" stroke-width=\"1.5\"/>"
                }
            }
            svg += legendEntry(g, index: index, name: line.name, color: line.color)
        }
        return svg + "</svg>"
    }

    /// Grouped bars: one group per category, one bar per series within it.
    static func bars(
        title: String, yLabel: String, categories: [String], series: [(name: String, color: String)], values: [[Double?]],
        yMax: Double? = nil
    ) -> String {
        let g = Geometry(height: 400, bottom: 130)
        let all = values.flatMap { $0.compactMap { $0 } }
        guard !categories.isEmpty, !series.isEmpty, let high = all.max() else { return empty(title, g) }
        let yAxis = Axis(low: 0, high: yMax ?? max(high, 1e-12), log: false, padToZero: true)
        var svg = header(title, g)
        svg += frame(g, xAxis: nil, yAxis: yAxis, xLabel: "", yLabel: yLabel)
        let groupWidth = (g.width - g.left - g.right) / Double(categories.count)
        let barWidth = groupWidth * 0.8 / Double(series.count)
        for (group, category) in categories.enumerated() {
            let groupLeft = g.left + Double(group) * groupWidth + groupWidth * 0.1
            for (index, entry) in series.enumerated() {
                guard group < values.count, index < values[group].count, let value = values[group][index] else { continue }
                let y = yAxis.position(value, g.plotY)
                svg += "<rect x=\"\(n(groupLeft + Double(index) * barWidth))\" y=\"\(n(y))\" width=\"\(n(max(barWidth - 1, 1)))\" "
                    + "height=\"\(n(max(g.height - g.bottom - y, 0)))\" fill=\"\(entry.color)\">"
                    + "<title>\(escape(category)) \(escape(entry.name)): \(Axis.label(value))</title></rect>"
            }
            let labelX = groupLeft + groupWidth * 0.4
            let labelY = g.height - g.bottom + 14
            svg += "<text x=\"\(n(labelX))\" y=\"\(n(labelY))\" font-size=\"10\" text-anchor=\"end\" "
                + "transform=\"rotate(-40 \(n(labelX)) \(n(labelY)))\">\(escape(category))</text>"
        }
        for (index, entry) in series.enumerated() { svg += legendEntry(g, index: index, name: entry.name, color: entry.color) }
        return svg + "</svg>"
    }

    static func header(_ title: String, _ g: Geometry) -> String {
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" width=\"\(n(g.width))\" height=\"\(n(g.height))\" "
            + "viewBox=\"0 0 \(n(g.width)) \(n(g.height))\" font-family=\"sans-serif\"><title>\(escape(title))</title>"
            + "<text x=\"\(n(g.left))\" y=\"18\" font-size=\"13\" font-weight=\"bold\">\(escape(title))</text>"
    }

    static func empty(_ title: String, _ g: Geometry) -> String {
        header(title, g) + "<text x=\"\(g.left)\" y=\"\(g.height / 2)\" font-size=\"12\">no data</text></svg>"
    }

    static func frame(_ g: Geometry, xAxis: Axis?, yAxis: Axis, xLabel: String, yLabel: String) -> String {
        var svg = "<rect x=\"\(n(g.left))\" y=\"\(n(g.top))\" width=\"\(n(g.width - g.left - g.right))\" "
            + "height=\"\(n(g.height - g.top - g.bottom))\" fill=\"none\" stroke=\"#999\"/>"
        for tick in yAxis.ticks {
            let y = yAxis.position(tick, g.plotY)
            svg += "<line x1=\"\(n(g.left))\" x2=\"\(n(g.width - g.right))\" y1=\"\(n(y))\" y2=\"\(n(y))\" stroke=\"#e5e5e5\"/>"
                + "<text x=\"\(n(g.left - 4))\" y=\"\(n(y + 3))\" font-size=\"10\" text-anchor=\"end\">\(Axis.label(tick))</text>"
        }
        if let xAxis {
            for tick in xAxis.ticks {
                let x = xAxis.position(tick, g.plotX)
                svg += "<line x1=\"\(n(x))\" x2=\"\(n(x))\" y1=\"\(n(g.top))\" y2=\"\(n(g.height - g.bottom))\" stroke=\"#e5e5e5\"/>"
                    + "<text x=\"\(n(x))\" y=\"\(n(g.height - g.bottom + 14))\" font-size=\"10\" text-anchor=\"middle\">\(Axis.label(tick))</text>"
            }
            svg += "<text x=\"\(n((g.left + g.width - g.right) / 2))\" y=\"\(n(g.height - 12))\" font-size=\"11\" text-anchor=\"middle\">"
                + "\(escape(xLabel))</text>"
        }
        let scale = yAxis.log ? " (log scale)" : ""
        let middle = n((g.top + g.height - g.bottom) / 2)
        svg += "<text x=\"14\" y=\"\(middle)\" font-size=\"11\" text-anchor=\"middle\" transform=\"rotate(-90 14 \(middle))\">"
            + "\(escape(yLabel + scale))</text>"
        return svg
    }

    static func legendEntry(_ g: Geometry, index: Int, name: String, color: String) -> String {
        let y = g.top + 8 + Double(index) * 16
        let x = g.width - g.right + 10
        return "<rect x=\"\(n(x))\" y=\"\(n(y - 3))\" width=\"12\" height=\"4\" fill=\"\(color)\"/>"
            + "<text x=\"\(n(x + 16))\" y=\"\(n(y + 2))\" font-size=\"11\">\(escape(name))</text>"
    }

    /// A coordinate with one decimal.
    static func n(_ value: Double) -> String { String(format: "%.1f", value) }

    /// Text for SVG and HTML: the five characters with meaning escaped.
    static func escape(_ text: String) -> String {
        var escaped = ""
        for character in text {
            switch character {
            case "&": escaped += "&amp;"
            case "<": escaped += "&lt;"
            case ">": escaped += "&gt;"
            case "\"": escaped += "&quot;"
            case "'": escaped += "&#39;"
            default: escaped.append(character)
            }
        }
        return escaped
    }
}

/// A chart axis: linear from zero or the data's low end, or logarithmic over whole decades.
struct Axis {
    var low: Double
    var high: Double
    var log: Bool

    init(low: Double, high: Double, log: Bool, padToZero: Bool) {
        self.log = log
        if log {
            self.low = pow(10, Foundation.log10(max(low, 1e-12)).rounded(.down))
            self.high = pow(10, Foundation.log10(max(high, self.low * 10)).rounded(.up))
        } else {
            let span = high - low
            let step = Axis.niceStep(span > 0 ? span : max(abs(high), 1))
            self.low = padToZero ? min(0, low) : (low / step).rounded(.down) * step
            self.high = span > 0 ? (high / step).rounded(.up) * step : self.low + 4 * step
        }
    }

    /// A round step (1, 2 or 5 × 10^k) giving about five ticks.
    static func niceStep(_ span: Double) -> Double {
        let raw = span / 5
        let magnitude = pow(10, Foundation.log10(raw).rounded(.down))
        let ratio = raw / magnitude
        return magnitude * (ratio < 1.5 ? 1 : ratio < 3.5 ? 2 : ratio < 7.5 ? 5 : 10)
    }

    var ticks: [Double] {
        if log {
            var ticks: [Double] = []
            var value = low
            while value <= high * 1.0001 {
                ticks.append(value)
                value *= 10
            }
            return ticks
        }
        let step = Axis.niceStep(high - low)
        guard step > 0, step.isFinite else { return [low] }
        return stride(from: low, through: high + step * 1e-6, by: step).map { $0 }
    }

    /// Screen coordinate of `value` between `range.0` (at `low`) and `range.1` (at `high`).
    func position(_ value: Double, _ range: (Double, Double)) -> Double {
        let fraction: Double
        if log {
            let clamped = max(value, low)
            fraction = (Foundation.log10(clamped) - Foundation.log10(low)) / (Foundation.log10(high) - Foundation.log10(low))
        } else {
            fraction = high > low ? (value - low) / (high - low) : 0
        }
        return range.0 + (range.1 - range.0) * min(max(fraction, 0), 1)
    }

    static func label(_ value: Double) -> String {
        if value == 0 { return "0" }
        let magnitude = abs(value)
        if magnitude >= 1000 || magnitude < 0.001 { return String(format: "%.0e", value) }
        if magnitude >= 10 { return String(format: "%.0f", value) }
        if magnitude >= 1 { return String(format: "%.1f", value) }
        return String(format: "%.2g", value)
    }
}
