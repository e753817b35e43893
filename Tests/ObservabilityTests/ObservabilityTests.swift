import Testing
@testable import Observability

/// The pieces of the access log and /metrics that turn values into text.
@Suite("observability formats")
struct ObservabilityTests {
    @Test func accessLogEscapesAndFormats() {
        #expect(AccessLog.seconds(0.0042) == "0.004")
        #expect(AccessLog.seconds(12.3456) == "12.346")
        #expect(AccessLog.escape("a\"b\nc") == "a\\\"b\\x0ac")
        #expect(AccessLog.json("a\"b\u{1}") == "\"a\\\"b\\u0001\"")
    }

    @Test func metricsLabelsAndNumbers() {
        #expect(Metrics.escape("a\"b\\c\nd") == "a\\\"b\\\\c\\nd")
        #expect(Metrics.number(0.25) == "0.25")
        #expect(Metrics.number(5) == "5")
    }

    @Test func statusPageFormatFromTheQuery() {
        #expect(StatusPage.format(query: "json") == .json)
        #expect(StatusPage.format(query: "a=1&format=html") == .html)
        #expect(StatusPage.format(query: "") == .text)
    }
}
