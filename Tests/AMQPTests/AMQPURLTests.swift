import AMQP
import Testing

@Suite("AMQP URL")
struct AMQPURLTests {
    @Test func fullURLIsDecoded() throws {
        let url = try AMQPURL("amqps://us%40er:p%3Ass@broker.example:5999/my%2Fvhost")
        #expect(url.isTLS)
        #expect(url.user == "us@er")
        #expect(url.password == "p:ss")
        #expect(url.host == "broker.example")
        #expect(url.port == 5999)
        #expect(url.virtualHost == "my/vhost")
    }

    @Test func defaultsFollowRabbitMQ() throws {
        let plain = try AMQPURL("amqp://")
        #expect(plain == AMQPURL(host: "localhost", port: 5672, virtualHost: "/"))
        #expect(try AMQPURL("amqps://h").port == 5671)
        #expect(try AMQPURL("amqp://h/").virtualHost == "")
        #expect(try AMQPURL("amqp://h/%2F").virtualHost == "/")
        #expect(try AMQPURL("amqp://[::1]:1234").host == "::1")
    }

    @Test func errorsNameThePart() {
        #expect(throws: AMQPError.invalidURL(url: "http://h", reason: "expected scheme amqp:// or amqps://")) {
            try AMQPURL("http://h")
        }
        #expect(throws: AMQPError.invalidURL(url: "amqp://h:99999", reason: "port: expected a number 1...65535, got '99999'")) {
            try AMQPURL("amqp://h:99999")
        }
        #expect(throws: AMQPError.invalidURL(url: "amqp://u:***@h/a/b", reason: "vhost: an unencoded '/' (write %2F for the default vhost)")) {
            try AMQPURL("amqp://u:secret@h/a/b")
        }
        #expect(throws: AMQPError.invalidURL(url: "", reason: "HYPERION_AMQP_URL is not set")) {
            try AMQPURL.fromEnvironment([:])
        }
    }

    @Test func descriptionHidesThePassword() throws {
        #expect(try AMQPURL("amqp://guest:secret@localhost:5672/%2F").description == "amqp://guest:***@localhost:5672/%2F")
    }
}
