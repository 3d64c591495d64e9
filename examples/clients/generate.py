#!/usr/bin/env python3
"""Publish one request onto hyperion.ingress and print the streamed reply (pika, any AMQP 0-9-1 client works).

    HYPERION_AMQP_URL=amqp://client:pass@localhost:5672/%2F python3 examples/clients/generate.py "Hello" [max_tokens]
"""
import json
import os
import sys
import uuid

import pika

url = os.environ.get("HYPERION_AMQP_URL", "amqp://guest:guest@localhost:5672/%2F")
prompt = sys.argv[1] if len(sys.argv) > 1 else "What is the capital of France?"
max_tokens = int(sys.argv[2]) if len(sys.argv) > 2 else 32

connection = pika.BlockingConnection(pika.URLParameters(url))
channel = connection.channel()
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
channel.basic_publish(
    exchange="hyperion.ingress", routing_key="hyperion.ingress", body=json.dumps(request),
    properties=pika.BasicProperties(content_type="application/json", delivery_mode=2,
                                    correlation_id=request_id, reply_to="amq.rabbitmq.reply-to"))
connection.call_later(float(os.environ.get("HYPERION_TIMEOUT", "120")), channel.stop_consuming)
channel.start_consuming()
connection.close()
print(json.dumps(result))
sys.exit(0 if result.get("type") == "result" else 1)
