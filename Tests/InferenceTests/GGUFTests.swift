import Foundation
import Testing

@testable import Inference
import GGUF

@Suite("GGUF reader")
struct GGUFTests {
    @Test("reads SmolLM2's metadata and tensor table")
    func readsModel() throws {
        let file = try TestFiles.modelFile()
        #expect(file.version == 3)
        #expect(file.architecture == "llama")
        #expect(file.int("llama.block_count") == 30)
        #expect(file.int("llama.embedding_length") == 576)
        #expect(file.int("llama.attention.head_count_kv") == 3)
        #expect(file.float("llama.rope.freq_base") == 100_000)
        #expect(file.string("tokenizer.ggml.pre") == "smollm")
        #expect(file.bool("tokenizer.ggml.add_bos_token") == false)
        #expect(file.stringArray("tokenizer.ggml.tokens")?.count == 49152)
        #expect(file.stringArray("tokenizer.ggml.merges")?.count == 48900)
        #expect(file.intArray("tokenizer.ggml.token_type")?.count == 49152)
        #expect(file.tensors.count == 272)
        let embedding = try #require(file.tensor(named: "token_embd.weight"))
        #expect(embedding.shape == [576, 49152])
        #expect(embedding.type == .q8_0)
        #expect(embedding.byteCount == 576 * 49152 / 32 * 34)
        let q = try #require(file.tensor(named: "blk.0.attn_q.weight"))
        #expect(q.type == .q4_1)
        #expect(q.rowCount == 576 && q.rowLength == 576)
        #expect(file.dataOffset % file.alignment == 0)
        #expect(throws: GGUFError.self) { try file.requireInt("llama.no_such_key") }
        #expect(throws: GGUFError.self) { try file.requireInt("general.architecture") }
    }

    @Test("reads every metadata value type")
    func everyValueType() throws {
        var b = GGUFBuilder()
        b.header(tensors: 1, metadata: 14)
        func key(_ k: String, _ type: UInt32) { b.string(k); b.u32(type) }
        key("u8", 0); b.u8(200)
        key("i8", 1); b.u8(0xFF)
        key("u16", 2); b.bytes += [0x34, 0x12]
        key("i16", 3); b.bytes += [0xFE, 0xFF]
        key("u32", 4); b.u32(70000)
        key("i32", 5); b.u32(UInt32(bitPattern: -5))
        key("f32", 6); b.u32(Float(1.5).bitPattern)
        key("bool", 7); b.u8(1)
        key("str", 8); b.string("héllo")
        key("arr", 9); b.u32(4); b.u64(3); b.u32(1); b.u32(2); b.u32(3)
        key("u64", 10); b.u64(1 << 40)
        key("i64", 11); b.u64(UInt64(bitPattern: -7))
        key("f64", 12); b.u64(Double(2.25).bitPattern)
        key("strs", 9); b.u32(8); b.u64(2); b.string("a"); b.string("bc")
        b.string("t"); b.u32(1); b.u64(4); b.u32(0); b.u64(0)
        b.pad(to: 32)
        for v: Float in [1, 2, 3, 4] { b.u32(v.bitPattern) }

        let file = try GGUFFile(bytes: b.bytes)
        #expect(file.metadata["u8"] == .uint8(200))
        #expect(file.metadata["i8"] == .int8(-1))
        #expect(file.metadata["u16"] == .uint16(0x1234))
        #expect(file.int("i16") == -2)
        #expect(file.int("u32") == 70000)
        #expect(file.int("i32") == -5)
        #expect(file.float("f32") == 1.5)
        #expect(file.bool("bool") == true)
        #expect(file.string("str") == "héllo")
        #expect(file.intArray("arr") == [1, 2, 3])
        #expect(file.int("u64") == 1 << 40)
        #expect(file.int("i64") == -7)
        #expect(file.double("f64") == 2.25)
        #expect(file.stringArray("strs") == ["a", "bc"])
        #expect(file.metadataKeys.first == "u8" && file.metadataKeys.count == 14)
        let t = try #require(file.tensor(named: "t"))
        #expect(t.shape == [4] && t.type == .f32)
        let data = file.tensorData(t)
        #expect(data.loadUnaligned(fromByteOffset: 12, as: Float.self) == 4)
    }

    /// A valid one-tensor file to corrupt in the tests below.
    static func validFile() -> [UInt8] {
        var b = GGUFBuilder()
        b.header(tensors: 1, metadata: 1)
        b.string("general.architecture"); b.u32(8); b.string("llama")
        b.string("w"); b.u32(2); b.u64(32); b.u64(2); b.u32(GGMLType.q8_0.rawValue); b.u64(0)
        b.pad(to: 32)
        b.bytes += [UInt8](repeating: 0, count: 68)
        return b.bytes
    }

    @Test("a truncated or corrupt file fails with an error naming the problem")
    func corruptFiles() throws {
        let valid = Self.validFile()
        _ = try GGUFFile(bytes: valid)

        func failure(_ bytes: [UInt8]) -> String {
            do {
                _ = try GGUFFile(bytes: bytes)
                return "no error"
            } catch {
                return "\(error)"
            }
        }
        #expect(failure(Array("GGML".utf8) + valid.dropFirst(4)).contains("not a GGUF file"))
        var badVersion = valid
        badVersion[4] = 9
        #expect(failure(badVersion).contains("unsupported GGUF version 9"))
        #expect(failure(Array(valid.prefix(30))).contains("truncated"))
        #expect(failure(Array(valid.dropLast(10))).contains("tensor \"w\": truncated"))
        var badType = valid
        // The metadata value type sits right after the 20-byte key ("general.architecture").
        badType[24 + 8 + 20] = 99
        #expect(failure(badType).contains("unknown value type 99"))
        var hugeCount = valid
        hugeCount[16 + 7] = 0x7F
        #expect(failure(hugeCount).contains("metadata count"))
    }
}
