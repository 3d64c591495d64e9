import AMQP
import Testing

@Suite("Ack coalescing")
struct AckCoalescerTests {
    @Test func aRunFromTheOldestUnsettledTagBecomesOneMultipleAck() {
        var acks = AckCoalescer()
        for tag in [3, 1, 2, 4] as [UInt64] { acks.add(tag) }
        #expect(acks.flush().map { [$0.tag, $0.multiple ? 1 : 0] } == [[4, 1]])
        #expect(acks.settledBelow == 5)
    }

    @Test func tagsAfterAGapAreAckedSinglyAndJoinTheRunLater() {
        var acks = AckCoalescer()
        for tag in [1, 2, 4, 5] as [UInt64] { acks.add(tag) }
        // 3 is still being handled: a multiple ack at 5 would settle it too.
        #expect(acks.flush().map { [$0.tag, $0.multiple ? 1 : 0] } == [[2, 1], [4, 0], [5, 0]])
        acks.add(3)
        acks.add(6)
        #expect(acks.flush().map { [$0.tag, $0.multiple ? 1 : 0] } == [[6, 1]])
        #expect(acks.settledBelow == 7)
    }

    @Test func directSettlementsCountAndDuplicatesAreDropped() {
        var acks = AckCoalescer()
        acks.sent(1, multiple: false)  // a reject
        acks.add(2)
        acks.add(2)
        acks.add(1)
        #expect(acks.flush().map { [$0.tag, $0.multiple ? 1 : 0] } == [[2, 1]])
        acks.sent(10, multiple: true)
        acks.add(7)
        acks.add(11)
        #expect(acks.flush().map { [$0.tag, $0.multiple ? 1 : 0] } == [[11, 1]])
    }
}
