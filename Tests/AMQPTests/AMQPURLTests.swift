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

    @Test func tlsOptionsComeFromTheQuery() throws {
        let url = try AMQPURL("amqps://u:p@broker:5671/%2F?cacertfile=/etc/ca.pem&certfile=/etc/c.pem&keyfile=/etc/c.key")
        #expect(url.tls == AMQPTLSOptions(caCertificatePath: "/etc/ca.pem", clientCertificatePath: "/etc/c.pem", clientKeyPath: "/etc/c.key"))
        #expect(url.virtualHost == "/")
        #expect(url.description == "amqps://u:***@broker:5671/%2F?cacertfile=/etc/ca.pem&certfile=/etc/c.pem&keyfile=/etc/c.key")
        #expect(try AMQPURL("amqps://h?verify=verify_none").tls.verifyPeer == false)
        #expect(try AMQPURL("amqps://h/?cacertfile=%2Ftmp%2Fa%20b.pem").tls.caCertificatePath == "/tmp/a b.pem")
    }

    @Test func badTLSOptionsAreNamed() {
        #expect(
            throws: AMQPError.invalidURL(
                url: "amqp://u:***@h/?cacertfile=/ca.pem",
                reason: "query: cacertfile, certfile, keyfile, verify are TLS parameters: they need an amqps:// URL")
        ) {
            try AMQPURL("amqp://u:secret@h/?cacertfile=/ca.pem")
        }
        // A parameter nobody reads is named as unknown, not blamed on the scheme.
        #expect(throws: AMQPError.invalidURL(url: "amqp://h/?heartbeat=10", reason: "query: unknown parameter 'heartbeat' (known: cacertfile, certfile, keyfile, verify)")) {
            try AMQPURL("amqp://h/?heartbeat=10")
        }
        #expect(throws: AMQPError.invalidURL(url: "amqps://h?cafile=x", reason: "query: unknown parameter 'cafile' (known: cacertfile, certfile, keyfile, verify)")) {
            try AMQPURL("amqps://h?cafile=x")
        }
        #expect(throws: AMQPError.invalidURL(url: "amqps://h?certfile=/c.pem", reason: "certfile and keyfile: give both (a client certificate and its key) or neither")) {
            try AMQPURL("amqps://h?certfile=/c.pem")
        }
        #expect(throws: AMQPError.invalidURL(url: "amqps://h?verify=maybe", reason: "verify: expected verify_peer or verify_none, got 'maybe'")) {
            try AMQPURL("amqps://h?verify=maybe")
        }
        #expect(throws: AMQPError.invalidURL(url: "amqps://h?cacertfile", reason: "query: expected name=value, got 'cacertfile'")) {
            try AMQPURL("amqps://h?cacertfile")
        }
    }

    @Test func redactionIgnoresTheQuery() {
        #expect(AMQPURL.redacted("amqps://u:secret@h/?cacertfile=/a@b.pem") == "amqps://u:***@h/?cacertfile=/a@b.pem")
    }

    @Test func descriptionHidesThePassword() throws {
        #expect(try AMQPURL("amqp://guest:secret@localhost:5672/%2F").description == "amqp://guest:***@localhost:5672/%2F")
    }
}
