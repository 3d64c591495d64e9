import ServiceSupport
import Testing

@Suite("Heap statistics from malloc_info")
struct HeapStatisticsTests {
    @Test("the totals after the last heap are read: in use = arenas − free chunks + mapped chunks")
    func parsesTotals() throws {
        let xml = """
            <malloc version="1">
            <heap nr="0">
            <sizes>
            </sizes>
            <total type="fast" count="3" size="96"/>
            <total type="rest" count="2" size="5000"/>
            <system type="current" size="200000"/>
            <system type="max" size="200000"/>
            </heap>
            <total type="fast" count="7" size="400"/>
            <total type="rest" count="9" size="10000"/>
            <total type="mmap" count="2" size="262144"/>
            <system type="current" size="1000000"/>
            <system type="max" size="1200000"/>
            <aspace type="total" size="1000000"/>
            </malloc>
            """
        let statistics = try #require(HeapStatistics.parse(mallocInfo: xml))
        #expect(statistics == HeapStatistics(inUseBytes: 1_000_000 - 400 - 10_000 + 262_144, arenaBytes: 1_000_000, freeBytes: 10_400, mappedBytes: 262_144))
        #expect(HeapStatistics.parse(mallocInfo: "<malloc version=\"1\"></malloc>") == nil)
    }

    @Test("this process's statistics count 4 MiB it keeps, and stop counting it once freed")
    func countsWhatIsKept() throws {
        let before = try #require(HeapStatistics.current())
        // 64 KiB blocks: under the mmap threshold, so in the arenas; the margin of 1 MiB leaves room
        // for what tests running beside this one allocate meanwhile.
        var kept = [[UInt8]]()
        for _ in 0..<64 { kept.append([UInt8](repeating: 1, count: 65_536)) }
        let during = try #require(HeapStatistics.current())
        #expect(during.inUseBytes - before.inUseBytes >= 3_000_000)
        kept.removeAll()
        let after = try #require(HeapStatistics.current())
        #expect(during.inUseBytes - after.inUseBytes >= 3_000_000)
    }
}
