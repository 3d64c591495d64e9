import Foundation
import JSON
import Testing

import Profiles

@Suite("Model presets follow the public configs and the §5 conventions")
struct ModelPresetTests {
    @Test("parameter counts match the model cards")
    func parameterCounts() throws {
        let expected: [(ModelPreset, ClosedRange<Double>)] = [
            (.phi3Medium, 13.8e9...14.2e9), (.phi3Mini, 3.7e9...3.9e9), (.llama3_8B, 7.9e9...8.1e9),
            (.smolLM2_135M, 0.13e9...0.14e9),
        ]
        for (preset, range) in expected {
            let count = preset.shape(dtype: .f16).parameterCount
            #expect(range.contains(count), "\(preset.rawValue): \(count)")
        }
    }

    @Test("phi-3-medium per block: weights, FLOPs at the workload's mean context, KV and activations")
    func phi3MediumBlock() throws {
        let shape = try #require(try ModelPreset.shape(named: "phi-3-medium:q4_0"))
        #expect(shape.name == "phi-3-medium:q4_0")
        let workload = Workload.default  // P 512, O 128
        let profile = shape.profile(for: workload)
        #expect(profile.blocks.count == 40)
        let d = 5120.0
        // Q, O: d×d; K, V: d×1280 (10 KV heads of 128); gate, up, down: d×17920.
        let macs = 2 * d * d + 2 * d * 1280 + 3 * d * 17920
        let block = profile.blocks[0]
        #expect(block.prefillFlopsPerToken == 2 * macs + 4 * d * 256)
        #expect(block.decodeFlopsPerToken == 2 * macs + 4 * d * 576)
        #expect(block.weightBytes == (macs + 2 * d) * 18 / 32)
        #expect(block.kvBytesPerToken == 2 * 1280 * 2)
        #expect(block.activationBytesPerToken == d * 4)
        #expect(profile.head.decodeFlopsPerToken == 2 * d * 32064)
        #expect(profile.embedding.decodeFlopsPerToken == 0)
        #expect(profile.embedding.weightBytes == d * 32064 * 18 / 32)
        // About 7.9 GB of q4_0 weights in all.
        #expect((7.6e9...8.2e9).contains(profile.totalWeightBytes))
    }

    @Test("decode FLOPs grow with the workload's context; prefill with the prompt only")
    func contextDependence() throws {
        let shape = ModelPreset.llama3_8B.shape(dtype: .f16)
        let short = shape.profile(for: Workload(promptTokens: 100, outputTokens: 10, prefillChunk: 512, decodeBatch: 1, context: 2048, concurrency: 1))
        let long = shape.profile(for: Workload(promptTokens: 100, outputTokens: 1000, prefillChunk: 512, decodeBatch: 1, context: 2048, concurrency: 1))
        #expect(long.blocks[0].decodeFlopsPerToken - short.blocks[0].decodeFlopsPerToken == 4 * 4096 * 495)
        #expect(long.blocks[0].prefillFlopsPerToken == short.blocks[0].prefillFlopsPerToken)
    }

    @Test("bytes per weight of each dtype")
    func dtypes() {
        #expect(WeightDType.f32.bytesPerWeight == 4)
        #expect(WeightDType.f16.bytesPerWeight == 2)
        #expect(WeightDType.q8_0.bytesPerWeight == 34.0 / 32)
        #expect(WeightDType.q4_1.bytesPerWeight == 20.0 / 32)
        #expect(WeightDType.q4_0.bytesPerWeight == 18.0 / 32)
    }

    @Test("model names: a preset with or without dtype, an unknown dtype refused, other names passed on")
    func names() throws {
        #expect(try ModelPreset.shape(named: "smollm2-135m")?.dtype == .f16)
        #expect(try ModelPreset.shape(named: "SmolLM2-135M:Q4_1")?.dtype == .q4_1)
        #expect(try ModelPreset.shape(named: "gpt-9") == nil)
        #expect(throws: ModelSpecError.self) { try ModelPreset.shape(named: "phi-3-mini:q3_k") }
    }
}

@Suite("Device presets")
struct DevicePresetTests {
    @Test("every preset has positive figures and a plausible ratio of compute to bandwidth")
    func figures() {
        for preset in DevicePreset.allCases {
            let figures = preset.figures
            #expect(figures.flops > 1e12)
            #expect(figures.memoryBytes >= 8 * 1_073_741_824.0)
            let bandwidth = figures.memoryBandwidthBytesPerSecond ?? 0
            #expect(bandwidth > 5e10)
            // Every one of these is far more compute- than bandwidth-rich (decode is memory-bound).
            #expect(figures.flops / bandwidth > 20, "\(preset.rawValue)")
        }
        #expect(DevicePreset.a100_80GB.figures.memoryBytes == 2 * DevicePreset.a100_40GB.figures.memoryBytes)
        #expect(DevicePreset.t4.figures.memoryBandwidthBytesPerSecond == 320e9)
    }
}

@Suite("Topology files are validated with errors naming the field")
struct TopologyFileTests {
    static let valid = """
        {"tiers":[
          {"name":"edge","nodes":[{"id":"e1","flops":2.0e12,"mem_bw_bytes_per_s":1.0e11,"memory_bytes":8.0e9}],
           "link_to_next":{"bandwidth_bytes_per_s":1.25e7,"latency_s":0.01}},
          {"name":"fog","nodes":[{"id":"f1","device":"t4"},{"id":"f2","device":"t4","memory_bytes":1e9}],
           "link_to_next":{"bandwidth_bytes_per_s":1.25e8,"latency_s":0.005}},
          {"name":"cloud","nodes":[{"id":"c1","device":"A100-80GB"}]}
        ],"_comment":"extra keys are fine"}
        """

    func refusal(_ text: String) -> String? {
        do {
            _ = try Topology.parse(JSONValue.parse(text))
            return nil
        } catch {
            return error.description
        }
    }

    /// The valid file with one substitution applied.
    func variant(_ original: String, _ replacement: String) -> String {
        Self.valid.replacingOccurrences(of: original, with: replacement)
    }

    @Test("a valid file reads, with device presets and overrides")
    func valid() throws {
        let topology = try Topology.parse(JSONValue.parse(Self.valid))
        #expect(topology.tiers.map(\.name) == ["edge", "fog", "cloud"])
        #expect(topology.tiers[1].nodes[0].flops == 65e12)
        #expect(topology.tiers[1].nodes[1].memoryBytes == 1e9)
        #expect(topology.tiers[2].nodes[0].memoryBytes == DevicePreset.a100_80GB.figures.memoryBytes)
        #expect(topology.tiers[2].linkToNext == nil)
        #expect(topology.effectiveReturnLatencySeconds == 0.015)
    }

    @Test("bad fields are named by their path")
    func paths() {
        let cases: [(String, String, String)] = [
            ("\"flops\":2.0e12", "\"flops\":0", "topology.tiers[0].nodes[0].flops: expected a number > 0"),
            ("\"flops\":2.0e12", "\"flops\":\"fast\"", "topology.tiers[0].nodes[0].flops: expected a number > 0"),
            ("\"memory_bytes\":8.0e9", "\"memory_bytes\":-1", "topology.tiers[0].nodes[0].memory_bytes: expected a number ≥ 0"),
            ("\"device\":\"t4\"}", "\"device\":\"t5\"}", "topology.tiers[1].nodes[0].device: unknown device 't5'"),
            ("\"mem_bw_bytes_per_s\":1.0e11,", "", ""),
            ("\"flops\":2.0e12,", "", "topology.tiers[0].nodes[0].flops: required field is missing"),
            ("\"bandwidth_bytes_per_s\":1.25e8", "\"bandwidth_bytes_per_s\":0", "topology.tiers[1].link_to_next.bandwidth_bytes_per_s: expected a number > 0"),
            ("\"latency_s\":0.005", "\"latency_s\":-0.1", "topology.tiers[1].link_to_next.latency_s: expected a number ≥ 0"),
            ("\"id\":\"f2\"", "\"id\":\"e1\"", "topology.tiers[1].nodes[1].id: node id 'e1' is used twice"),
            ("\"id\":\"f2\"", "\"id\":\"f.2\"", "topology.tiers[1].nodes[1].id: expected a non-empty name"),
            ("\"name\":\"fog\"", "\"name\":\"edge\"", "topology.tiers[1].name: tier name 'edge' is used twice"),
            (",\n   \"link_to_next\":{\"bandwidth_bytes_per_s\":1.25e8,\"latency_s\":0.005}", "", "topology.tiers[1].link_to_next: required field is missing"),
            ("{\"id\":\"c1\",\"device\":\"A100-80GB\"}]}", "{\"id\":\"c1\",\"device\":\"A100-80GB\"}],\"link_to_next\":{\"bandwidth_bytes_per_s\":1,\"latency_s\":0}}", "topology.tiers[2].link_to_next: the last tier has no next tier"),
        ]
        for (original, replacement, message) in cases {
            let text = variant(original, replacement)
            #expect(text != Self.valid, "substitution \(original) did not apply")
            let error = refusal(text)
            if message.isEmpty {
                #expect(error == nil, "\(original) → \(replacement)")
            } else {
                #expect(error?.hasPrefix(message) == true, "\(String(describing: error)) should start with \(message)")
            }
        }
        #expect(refusal("{\"tiers\":[]}")?.hasPrefix("topology.tiers: expected at least one tier") == true)
        #expect(refusal("{\"tier\":[]}")?.hasPrefix("topology.tiers: required field is missing") == true)
        #expect(refusal("[]")?.hasPrefix("topology: expected an object") == true)
    }
}

@Suite("Custom profiles and workload files")
struct ProfileFileTests {
    @Test("a custom profile reads, with per-phase FLOPs when given")
    func customProfile() throws {
        let text = """
            {"name":"tiny","blocks":[
              {"flops_per_token":10,"weight_bytes":100,"kv_bytes_per_token":1,"activation_bytes_per_token":8},
              {"prefill_flops_per_token":5,"decode_flops_per_token":7,"weight_bytes":100,"kv_bytes_per_token":1,"activation_bytes_per_token":8}],
             "embedding":{"flops_per_token":0,"weight_bytes":50,"kv_bytes_per_token":0,"activation_bytes_per_token":8},
             "head":{"flops_per_token":3,"weight_bytes":50,"kv_bytes_per_token":0,"activation_bytes_per_token":4}}
            """
        let profile = try ModelProfile.parse(JSONValue.parse(text))
        #expect(profile.name == "tiny")
        #expect(profile.blocks[0].prefillFlopsPerToken == 10 && profile.blocks[0].decodeFlopsPerToken == 10)
        #expect(profile.blocks[1].prefillFlopsPerToken == 5 && profile.blocks[1].decodeFlopsPerToken == 7)
        #expect(profile.totalWeightBytes == 300)
    }

    @Test("a custom profile's bad figure is named by its path")
    func customProfileErrors() throws {
        let negative = """
            {"blocks":[{"flops_per_token":1,"weight_bytes":-5,"kv_bytes_per_token":0,"activation_bytes_per_token":1}],
             "embedding":{"flops_per_token":0,"weight_bytes":0,"kv_bytes_per_token":0,"activation_bytes_per_token":1},
             "head":{"flops_per_token":0,"weight_bytes":0,"kv_bytes_per_token":0,"activation_bytes_per_token":1}}
            """
        #expect(throws: JSONError(path: "profile.blocks[0].weight_bytes", message: "expected a number ≥ 0")) {
            try ModelProfile.parse(JSONValue.parse(negative))
        }
        let missingHead = """
            {"blocks":[{"flops_per_token":1,"weight_bytes":5,"kv_bytes_per_token":0,"activation_bytes_per_token":1}],
             "embedding":{"flops_per_token":0,"weight_bytes":0,"kv_bytes_per_token":0,"activation_bytes_per_token":1}}
            """
        #expect(throws: JSONError(path: "profile.head", message: "required field is missing (expected an object)")) {
            try ModelProfile.parse(JSONValue.parse(missingHead))
        }
    }

    @Test("a workload file overrides the defaults it names and refuses impossible values")
    func workloadFile() throws {
        let workload = try Workload.parse(JSONValue.parse("{\"prompt_tokens\":100,\"decode_batch\":8}"))
        #expect(workload.promptTokens == 100 && workload.decodeBatch == 8 && workload.outputTokens == 128)
        #expect(throws: JSONError(path: "workload.prefill_chunk", message: "expected an integer ≥ 1")) {
            try Workload.parse(JSONValue.parse("{\"prefill_chunk\":0}"))
        }
        #expect(throws: JSONError(path: "workload.output_tokens", message: "prompt_tokens + output_tokens must be ≥ 1")) {
            try Workload.parse(JSONValue.parse("{\"prompt_tokens\":0,\"output_tokens\":0}"))
        }
    }
}
