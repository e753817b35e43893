import Foundation
import GatewaySystem
import Testing
@testable import Workers

@Suite struct OpenFileCacheTests {
    @Test func theDirectoriesOnAPathAreWatched() {
        #expect(OpenFileCache.directories(of: "/a/b/c.html", root: "/srv") == ["/srv", "/srv/a", "/srv/a/b"])
        #expect(OpenFileCache.directories(of: "/a/", root: "/srv") == ["/srv", "/srv/a"])
        #expect(OpenFileCache.directories(of: "/x.css", root: "/srv") == ["/srv"])
        #expect(OpenFileCache.directories(of: "/", root: "/srv") == ["/srv"])
        #expect(OpenFileCache.directories(of: "/é/ü.txt", root: "/srv") == ["/srv", "/srv/é"])
    }

    /// The first open in a directory is not kept (its watch came after the open); the
    /// second is; a change empties the cache before the next lookup; an entry expires.
    @Test func aFileIsKeptOnlyOnceItsDirectoryIsWatchedAndDroppedOnAChange() throws {
        let root = "/tmp/gatewayd-ofc-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: root + "/d", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        try Data("x".utf8).write(to: URL(fileURLWithPath: root + "/d/f"))
        let tree = DocumentTree(root: root, allowSymlinks: false, cache: (capacity: 8, valid: 5))
        let cache = try #require(tree.cache)
        guard case .file = tree.lookup("/d/f", index: []) else { Issue.record("no file"); return }
        #expect(cache.find("/d/f", now: Host.monotonicSeconds()) == nil, "opened before its directories were watched")
        guard case .file(let second) = tree.lookup("/d/f", index: []) else { Issue.record("no file"); return }
        let hit = try #require(cache.find("/d/f", now: Host.monotonicSeconds()))
        #expect(hit.file === second.file)
        #expect(cache.find("/d/f", now: Host.monotonicSeconds() + 6) == nil, "expired after `valid` seconds")
        _ = tree.lookup("/d/f", index: [])
        #expect(cache.find("/d/f", now: Host.monotonicSeconds()) != nil)
        try Data("y".utf8).write(to: URL(fileURLWithPath: root + "/other"))  // any change below the root
        #expect(cache.find("/d/f", now: Host.monotonicSeconds()) == nil, "emptied by the change")
    }
}
