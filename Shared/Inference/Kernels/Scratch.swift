/// A growable, reusable, uninitialised buffer for kernel workspaces (no per-call allocation).
final class Scratch<Element: BitwiseCopyable> {
    private(set) var pointer: UnsafeMutablePointer<Element>
    private(set) var capacity: Int

    init(capacity: Int = 64) {
        self.capacity = max(capacity, 1)
        pointer = UnsafeMutablePointer<Element>.allocate(capacity: self.capacity)
    }

    /// A pointer to at least `count` elements; previous contents are lost when it grows.
    func reserve(_ count: Int) -> UnsafeMutablePointer<Element> {
        if count > capacity {
            pointer.deallocate()
            capacity = max(count, capacity * 2)
            pointer = UnsafeMutablePointer<Element>.allocate(capacity: capacity)
        }
        return pointer
    }

    deinit { pointer.deallocate() }
}

/// A pointer that may cross into the worker threads of one parallel section.
///
/// Sendable: each parallel section writes disjoint elements and the caller waits for it to end
/// before reading, so no element is accessed by two threads at once.
struct SharedPointer<Element>: @unchecked Sendable {
    let base: UnsafeMutablePointer<Element>
    init(_ base: UnsafeMutablePointer<Element>) { self.base = base }
}
