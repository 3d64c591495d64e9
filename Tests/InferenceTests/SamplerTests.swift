import Foundation
import Testing

@testable import Inference

@Suite("Sampling")
struct SamplerTests {
    let logits: [Float] = [0.5, 2.0, -1.0, 1.9, 2.0, 0.0]

    @Test("temperature 0 is greedy, ties going to the lower id")
    func greedy() {
        let s = Sampler.sample(logits, parameters: .greedy, position: 3)
        #expect(s.token == 1)
        #expect(s.logprob < 0 && s.logprob > -2)
    }

    @Test("the same (logits, parameters, seed, position) always gives the same token")
    func reproducible() {
        let p = SamplingParameters(temperature: 0.9, topK: 0, topP: 0.95, seed: 42)
        for position in 0..<50 {
            let a = Sampler.sample(logits, parameters: p, position: position)
            let b = Sampler.sample(logits, parameters: p, position: position)
            #expect(a == b)
        }
        let draws = (0..<50).map { Sampler.sample(logits, parameters: p, position: $0).token }
        #expect(Set(draws).count > 2)
    }

    @Test("top-k 1 and a tiny top-p reduce to greedy")
    func truncation() {
        for position in 0..<30 {
            let k = Sampler.sample(logits, parameters: SamplingParameters(temperature: 1.5, topK: 1, seed: 7), position: position)
            #expect(k.token == 1)
            let p = Sampler.sample(logits, parameters: SamplingParameters(temperature: 1.5, topP: 0.01, seed: 7), position: position)
            #expect(p.token == 1)
            let two = Sampler.sample(logits, parameters: SamplingParameters(temperature: 5, topK: 2, seed: 9), position: position)
            #expect(two.token == 1 || two.token == 4)
        }
    }

    @Test("draws follow the softmax of logits / temperature")
    func distribution() {
        // p(1) = 3/4 at temperature 1.
        let l: [Float] = [0, Float(log(3.0))]
        let n = 4000
        let p = SamplingParameters(temperature: 1, seed: 5)
        let ones = (0..<n).filter { Sampler.sample(l, parameters: p, position: $0).token == 1 }.count
        let share = Double(ones) / Double(n)
        #expect(abs(share - 0.75) < 0.03)
    }

    @Test("stop strings: earliest match and the suffix a streamer must hold back")
    func stopStrings() {
        let stops = StopStrings(["</s>", "\n\nUser:"])
        let text = "Hello\n\nUser: hi </s>"
        #expect(stops.firstMatch(in: text).map { String(text[..<$0]) } == "Hello")
        #expect(stops.firstMatch(in: "nothing here") == nil)
        #expect(stops.pendingSuffixLength(of: "Hello\n\nUs") == 4)
        #expect(stops.pendingSuffixLength(of: "Hello <") == 1)
        #expect(stops.pendingSuffixLength(of: "Hello") == 0)
    }

    @Test("the vectorised exponential and log-probabilities agree with libm")
    func exponential() {
        var worst: Float = 0
        for k in 0...8700 {
            let x = -Float(k) / 100
            let relative = abs(ExpSum.exp(x) - Foundation.exp(x)) / Foundation.exp(x)
            worst = max(worst, relative)
        }
        #expect(worst < 2e-6)
        let l: [Float] = (0..<1000).map { Float(($0 * 37) % 101) / 7 }
        let maximum = Double(l.max() ?? 0)
        let normaliser = maximum + Foundation.log(l.reduce(0.0) { $0 + Foundation.exp(Double($1) - maximum) })
        let s = Sampler.sample(l, parameters: .greedy, position: 0)
        #expect(abs(s.logprob - (Double(l[Int(s.token)]) - normaliser)) < 1e-5)
    }
}
