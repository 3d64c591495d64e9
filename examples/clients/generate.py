#!/usr/bin/env python3
"""Publish one request onto hyperion.ingress and print the streamed reply (pika, any AMQP 0-9-1 client works).

    HYPERION_AMQP_URL=amqp://client:pass@localhost:5672/%2F python3 examples/clients/generate.py "Hello" [max_tokens]

TLS: an amqps:// URL with the certificates in the query, as every Hyperion executable takes it:
amqps://client:pass@host:5671/%2F?cacertfile=ca.pem[&certfile=client.pem&keyfile=client.key].
Exits 75 when the system is overloaded (the bounded request queue refused the request).
"""
import json
import os
import ssl
import sys
import uuid
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import pika

OVERLOADED = 75


def connection_parameters(url):
    """pika's URLParameters, with Hyperion's TLS query parameters turned into an SSL context."""
    parts = urlsplit(url)
    tls = dict(parse_qsl(parts.query))
    parameters = pika.URLParameters(urlunsplit(parts._replace(query="")))
    if parts.scheme == "amqps":
        context = ssl.create_default_context(cafile=tls.get("cacertfile"))
        if tls.get("verify") == "verify_none":
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if "certfile" in tls:
            context.load_cert_chain(tls["certfile"], tls.get("keyfile"))
        parameters.ssl_options = pika.SSLOptions(context, parts.hostname)
    return parameters


url = os.environ.get("HYPERION_AMQP_URL", "amqp://guest:guest@localhost:5672/%2F")
prompt = sys.argv[1] if len(sys.argv) > 1 else "What is the capital of France?"
max_tokens = int(sys.argv[2]) if len(sys.argv) > 2 else 32

connection = pika.BlockingConnection(connection_parameters(url))
channel = connection.channel()
# Publisher confirms: the broker nacks a request when the bounded ingress queue is full.
channel.confirm_delivery()
request_id = str(uuid.uuid4())
result = {}


def on_reply(ch, method, properties, body):
    reply = json.loads(body)
    if properties.correlation_id != request_id:
        return
    if reply["type"] == "token":
        print(json.dumps({"index": reply["index"], "token": reply["token"], "text": reply["text"]}), flush=True)
    else:
        result.update(reply)
        ch.stop_consuming()


# Direct reply-to: consume amq.rabbitmq.reply-to (no-ack) before publishing on the same channel.
channel.basic_consume("amq.rabbitmq.reply-to", on_reply, auto_ack=True)
request = {"v": 1, "id": request_id, "messages": [{"role": "user", "content": prompt}],
           "max_tokens": max_tokens, "stream": True}
try:
    channel.basic_publish(
        exchange="hyperion.ingress", routing_key="hyperion.ingress", body=json.dumps(request),
        properties=pika.BasicProperties(content_type="application/json", delivery_mode=2,
                                        correlation_id=request_id, reply_to="amq.rabbitmq.reply-to"))
except pika.exceptions.NackError:
    print("system overloaded: the request queue is full; try again later", file=sys.stderr)
    connection.close()
    sys.exit(OVERLOADED)
connection.call_later(float(os.environ.get("HYPERION_TIMEOUT", "120")), channel.stop_consuming)
channel.start_consuming()
connection.close()
print(json.dumps(result))
sys.exit(0 if result.get("type") == "result" else 1)
