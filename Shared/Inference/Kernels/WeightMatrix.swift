import GGUF
/// A weight matrix inside a mapped GGUF file, used in place (never dequantised as a whole).
///
/// Row `j` holds the `columns` input weights of output `j`, as consecutive quantized blocks.
struct WeightMatrix: @unchecked Sendable {
    // Sendable: `base` points into the read-only mapping owned by `file`, which this value retains.
    let name: String
    let type: GGMLType
    let rows: Int
    let columns: Int
    let rowBytes: Int
    let base: UnsafeRawPointer
    let file: GGUFFile

    init(file: GGUFFile, tensor: GGUFTensorInfo) throws {
        guard let base = file.tensorData(tensor).baseAddress else {
            throw GGUFError(context: "tensor \"\(tensor.name)\"", reason: "has no data")
        }
        self.base = base
        name = tensor.name
        type = tensor.type
        columns = tensor.rowLength
        rows = tensor.rowCount
        rowBytes = tensor.rowBytes
        self.file = file
    }

    @inline(__always)
    func row(_ j: Int) -> UnsafeRawPointer { base + j * rowBytes }

    /// Row `j` as floats, by the reference dequantisation.
    func dequantizeRow(_ j: Int, into out: UnsafeMutablePointer<Float>) {
        Dequantize.row(type: type, from: row(j), count: columns, into: out)
    }

    /// Bytes of quantized weights (what a product reads once).
    var byteCount: Int { rows * rowBytes }
}
