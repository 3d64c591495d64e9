"""Checks the broker users of scripts/broker-users against a real RabbitMQ node.

Each service user performs the operations docs/design.md §3 gives it (declaring its objects, publishing,
consuming, RPC over direct reply-to), and the broker must refuse what §12 forbids: a client writing
anywhere but the ingress and cancel exchanges or reading another client's queues, a worker writing
to the default exchange, any service publishing telemetry under another's routing key.

Run by Tests/DeploymentTests/broker-permissions.sh, which creates the users (with a name prefix, in
a scratch vhost) and passes their passwords in the environment. Prints one line per check and
"N passed, M failed" last.
"""

import os
import sys
import time
import uuid
from urllib.parse import urlparse

import pika
from pika.exceptions import AMQPConnectionError, ChannelClosedByBroker

ACCESS_REFUSED = 403
RESOURCE_LOCKED = 405

url = urlparse(os.environ["HYPERION_TEST_AMQP_URL"])
HOST = url.hostname or "127.0.0.1"
PORT = url.port or 5672
VHOST = os.environ["PERMTEST_VHOST"]
PREFIX = os.environ["PERMTEST_PREFIX"]
PASSWORDS = {
    "planner": os.environ["HYPERION_PLANNER_PASSWORD"],
    "scheduler": os.environ["HYPERION_SCHEDULER_PASSWORD"],
    "worker": os.environ["HYPERION_WORKER_PASSWORD"],
    "client": os.environ["HYPERION_CLIENT_PASSWORD"],
    "alice": os.environ["HYPERION_CLIENT_PASSWORD_ALICE"],
    "bob": os.environ["HYPERION_CLIENT_PASSWORD_BOB"],
    "monitor": os.environ["HYPERION_MONITOR_PASSWORD"],
}

INGRESS = "hyperion.ingress"
CANCEL = "hyperion.cancel"
INTERNAL = "hyperion.internal"
TELEMETRY = "hyperion.telemetry"
PLAN = "hyperion.plan"
DEAD = "hyperion.dead"
PLAN_GET = "hyperion.plan.get"
REPLY_TO = "amq.rabbitmq.reply-to"
STAGE_QUEUE = "hyperion.stage.edge.permtest"
SCHED_QUEUE = "hyperion.sched.permtest"
EXCHANGES = {INGRESS: "direct", CANCEL: "fanout", INTERNAL: "direct", TELEMETRY: "topic", PLAN: "fanout", DEAD: "fanout"}

passed = 0
failed = 0


def report(ok, name, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   - {name}")
    else:
        failed += 1
        print(f"FAIL - {name}{': ' + detail if detail else ''}")


def connect(user, password=None, vhost=VHOST):
    credentials = pika.PlainCredentials(PREFIX + user, PASSWORDS[user] if password is None else password)
    params = pika.ConnectionParameters(
        host=HOST, port=PORT, virtual_host=vhost, credentials=credentials,
        connection_attempts=1, socket_timeout=5, blocked_connection_timeout=5,
        client_properties={"connection_name": f"permtest-{user}"})
    return pika.BlockingConnection(params)


def allowed(name, connection, operation):
    """The operation runs on a fresh channel (publishes confirmed) and must succeed."""
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        result = operation(channel)
        report(result is not False, name, "" if result is not False else "operation did not take effect")
        return channel
    except Exception as error:  # any refusal or failure is what this check reports
        report(False, name, f"{type(error).__name__}: {error}")
        return None


def refused(name, connection, operation, code=ACCESS_REFUSED):
    """The broker must close the channel with `code`; the connection stays usable."""
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        operation(channel)
        report(False, name, "the broker allowed it")
    except ChannelClosedByBroker as error:
        report(error.reply_code == code, name, f"closed with {error.reply_code} {error.reply_text}, expected {code}")
    except Exception as error:
        report(False, name, f"unexpected {type(error).__name__}: {error}")


def publish(exchange, routing_key, body=b"{}", **properties):
    def run(channel):
        channel.basic_publish(exchange, routing_key, body, pika.BasicProperties(**properties))
    return run


def declare_exchange(name):
    return lambda channel: channel.exchange_declare(name, EXCHANGES[name], durable=True)


def declare_queue(name, **options):
    return lambda channel: channel.queue_declare(name, **options)


def consume(queue):
    return lambda channel: channel.basic_consume(queue, lambda *_: None, auto_ack=False)


def get_one(connection, channel, queue, seconds=5.0):
    """Polls `queue` until one message arrives; returns (properties, body) or None."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        method, properties, body = channel.basic_get(queue, auto_ack=True)
        if method is not None:
            return properties, body
        connection.process_data_events(time_limit=0.05)
    return None


class Inbox:
    """Consumes direct reply-to (no-ack, as RabbitMQ requires) into a list."""

    def __init__(self, connection, channel):
        self.connection = connection
        self.messages = []
        channel.basic_consume(REPLY_TO, lambda ch, method, props, body: self.messages.append((props, body)),
                              auto_ack=True)

    def wait(self, seconds=5.0):
        deadline = time.monotonic() + seconds
        while not self.messages and time.monotonic() < deadline:
            self.connection.process_data_events(time_limit=0.05)
        return self.messages.pop(0) if self.messages else None


def main():
    scheduler = connect("scheduler")
    planner = connect("planner")
    worker = connect("worker")
    alice = connect("alice")
    bob = connect("bob")
    monitor = connect("monitor")

    # --- scheduler: owns ingress, cancel subscription, its events queue (DESIGN §3) ----------
    for exchange in EXCHANGES:
        allowed(f"scheduler declares exchange {exchange}", scheduler, declare_exchange(exchange))
    allowed("scheduler declares the dead-letter queue and binds it", scheduler, lambda ch: (
        ch.queue_declare(DEAD, durable=True), ch.queue_bind(DEAD, DEAD)))
    allowed("scheduler declares the bounded ingress queue with DLX hyperion.dead and binds it", scheduler,
            lambda ch: (ch.queue_declare(INGRESS, durable=True, arguments={
                "x-dead-letter-exchange": DEAD, "x-max-length": 1000, "x-overflow": "reject-publish"}),
                ch.queue_bind(INGRESS, INGRESS, routing_key=INGRESS)))
    sched_events = allowed("scheduler declares its exclusive events queue bound to hyperion.internal", scheduler,
                           lambda ch: (ch.queue_declare(SCHED_QUEUE, exclusive=True),
                                       ch.queue_bind(SCHED_QUEUE, INTERNAL, routing_key=SCHED_QUEUE)))
    names = {}

    def subscribe(channel, exchange, key, label):
        names[label] = channel.queue_declare("", exclusive=True).method.queue
        channel.queue_bind(names[label], exchange, routing_key=key)

    sched_cancel = allowed("scheduler binds a server-named exclusive queue to hyperion.cancel", scheduler,
                           lambda ch: subscribe(ch, CANCEL, "", "cancel"))
    sched_telemetry = allowed("scheduler binds a server-named queue to hyperion.telemetry (worker.#)", scheduler,
                              lambda ch: subscribe(ch, TELEMETRY, "worker.#", "telemetry"))
    allowed("scheduler binds a server-named queue to hyperion.plan", scheduler,
            lambda ch: subscribe(ch, PLAN, "", "plan"))
    allowed("scheduler publishes telemetry as scheduler.<id>", scheduler, publish(TELEMETRY, "scheduler.permtest"))
    allowed("scheduler dead-letters to hyperion.dead", scheduler,
            publish(DEAD, "", headers={"x-hyperion-error": "test"}))
    refused("scheduler cannot publish telemetry as a worker", scheduler, publish(TELEMETRY, "worker.edge.x"))
    refused("scheduler cannot publish to hyperion.cancel", scheduler, publish(CANCEL, ""))

    # --- planner: plan.get RPC queue, plan fanout, RPC replies on the default exchange -------
    for exchange in (INTERNAL, PLAN, TELEMETRY, DEAD):
        allowed(f"planner declares exchange {exchange}", planner, declare_exchange(exchange))
    plan_channel = allowed("planner declares hyperion.plan.get bound to hyperion.internal", planner,
                           lambda ch: (ch.queue_declare(PLAN_GET, durable=True),
                                       ch.queue_bind(PLAN_GET, INTERNAL, routing_key=PLAN_GET)))
    allowed("planner publishes a plan to hyperion.plan", planner, publish(PLAN, "", b'{"v":1}'))
    allowed("planner publishes telemetry as planner", planner, publish(TELEMETRY, "planner"))
    refused("planner cannot publish telemetry as a worker", planner, publish(TELEMETRY, "worker.edge.x"))
    refused("planner cannot consume hyperion.ingress", planner, consume(INGRESS))

    # --- worker: its stage queue, steps to hyperion.internal, telemetry, plan subscription ----
    for exchange in (INTERNAL, TELEMETRY, PLAN, DEAD):
        allowed(f"worker declares exchange {exchange}", worker, declare_exchange(exchange))
    stage = allowed("worker declares its exclusive stage queue bound to hyperion.internal", worker,
                    lambda ch: (ch.queue_declare(STAGE_QUEUE, exclusive=True),
                                ch.queue_bind(STAGE_QUEUE, INTERNAL, routing_key=STAGE_QUEUE)))
    allowed("worker binds a server-named queue to hyperion.plan", worker,
            lambda ch: ch.queue_bind(ch.queue_declare("", exclusive=True).method.queue, PLAN))
    # A link-emulator runs as the worker user: it declares, binds and consumes its link queue.
    allowed("worker declares an emulated link's queue bound to hyperion.internal and consumes it", worker,
            lambda ch: (ch.queue_declare("hyperion.link.permtest", exclusive=True),
                        ch.queue_bind("hyperion.link.permtest", INTERNAL, routing_key="hyperion.link.permtest"),
                        ch.basic_consume("hyperion.link.permtest", lambda *args: None)))
    allowed("scheduler publishes a step to hyperion.internal", scheduler, publish(INTERNAL, STAGE_QUEUE))
    # Not a permission: RabbitMQ refuses even a passive declare of another connection's exclusive
    # queue, so a scheduler cannot read an exclusive stage queue's depth that way (DESIGN §7).
    refused("a passive declare of a worker's exclusive stage queue is RESOURCE_LOCKED for the scheduler",
            scheduler, lambda ch: ch.queue_declare(STAGE_QUEUE, passive=True), code=RESOURCE_LOCKED)
    allowed("any user may passively declare a non-exclusive queue (no permission needed)", worker,
            lambda ch: ch.queue_declare(INGRESS, passive=True))
    if stage is not None:
        got = get_one(worker, stage, STAGE_QUEUE)
        report(got is not None, "worker receives the scheduler's step on its stage queue")
    allowed("worker sends 'sampled' to the scheduler through hyperion.internal", worker,
            publish(INTERNAL, SCHED_QUEUE, b'{"type":"sampled"}'))
    if sched_events is not None:
        report(get_one(scheduler, sched_events, SCHED_QUEUE) is not None,
               "scheduler receives the worker's event on its events queue")
    allowed("worker publishes telemetry as worker.<tier>.<node>", worker, publish(TELEMETRY, "worker.edge.permtest"))
    if sched_telemetry is not None:
        report(get_one(scheduler, sched_telemetry, names["telemetry"]) is not None,
               "scheduler receives the worker's telemetry")
    allowed("worker dead-letters to hyperion.dead", worker, publish(DEAD, "", headers={"x-hyperion-error": "test"}))

    # plan.get RPC from a worker over direct reply-to, answered by the planner on the default exchange.
    rpc = worker.channel()
    rpc.confirm_delivery()
    try:
        inbox = Inbox(worker, rpc)
        rpc.basic_publish(INTERNAL, PLAN_GET, b'{"v":1}', pika.BasicProperties(reply_to=REPLY_TO, correlation_id="p1"))
        request = get_one(planner, plan_channel, PLAN_GET) if plan_channel is not None else None
        report(request is not None, "planner receives the worker's plan.get request")
        if request is not None:
            allowed("planner replies on the default exchange (amq.default)", planner,
                    publish("", request[0].reply_to, b'{"plan":1}', correlation_id=request[0].correlation_id))
        reply = inbox.wait()
        report(reply is not None and reply[0].correlation_id == "p1", "worker receives the plan over direct reply-to")
    except Exception as error:
        report(False, "worker plan.get RPC over direct reply-to", f"{type(error).__name__}: {error}")

    refused("worker cannot publish to the default exchange", worker, publish("", SCHED_QUEUE))
    refused("worker cannot publish to hyperion.ingress", worker, publish(INGRESS, INGRESS))
    refused("worker cannot publish to hyperion.plan", worker, publish(PLAN, ""))
    refused("worker cannot publish telemetry as a scheduler", worker, publish(TELEMETRY, "scheduler.x"))
    refused("worker cannot consume hyperion.ingress", worker, consume(INGRESS))
    refused("worker cannot consume hyperion.plan.get", worker, consume(PLAN_GET))
    refused("worker cannot declare hyperion.ingress", worker, declare_exchange(INGRESS))

    # --- clients: request over direct reply-to, cancel, own queues only ----------------------
    try:
        channel = alice.channel()
        channel.confirm_delivery()
        inbox = Inbox(alice, channel)
        channel.basic_publish(INGRESS, INGRESS, b'{"v":1,"id":"r1","prompt":"hi","max_tokens":1}',
                              pika.BasicProperties(reply_to=REPLY_TO, correlation_id="r1",
                                                   content_type="application/json", delivery_mode=2))
        report(True, "client publishes a request to hyperion.ingress (reply to amq.rabbitmq.reply-to)")
        ingress_channel = scheduler.channel()
        ingress_channel.confirm_delivery()
        request = get_one(scheduler, ingress_channel, INGRESS)
        report(request is not None, "scheduler takes the client's request from hyperion.ingress")
        if request is not None:
            allowed("scheduler replies to the client on the default exchange", scheduler,
                    publish("", request[0].reply_to, b'{"type":"result"}', correlation_id=request[0].correlation_id))
        reply = inbox.wait()
        report(reply is not None and reply[0].correlation_id == "r1", "client receives the reply over direct reply-to")
        # A cancel names its request by id and reply_to; with direct reply-to the broker rewrites
        # reply_to per channel, so the cancel must go out on the request's channel to match it.
        channel.basic_publish(CANCEL, "", b'{"v":1,"type":"cancel","id":"r1"}', pika.BasicProperties(reply_to=REPLY_TO))
        report(True, "client publishes a cancel to hyperion.cancel on the request's channel")
        cancel = get_one(scheduler, sched_cancel, names["cancel"]) if sched_cancel is not None else None
        report(cancel is not None, "scheduler receives the client's cancel")
        report(cancel is not None and request is not None and cancel[0].reply_to == request[0].reply_to,
               "the cancel's reply_to equals the request's, so the scheduler can match them")
    except Exception as error:
        report(False, "client request and cancel over direct reply-to", f"{type(error).__name__}: {error}")

    refused("a publish with reply_to amq.rabbitmq.reply-to on a channel not consuming it is refused", alice,
            publish(CANCEL, "", b'{}', reply_to=REPLY_TO), code=406)
    allowed("client declares and consumes a server-named exclusive queue", alice,
            lambda ch: ch.basic_consume(ch.queue_declare("", exclusive=True).method.queue, lambda *_: None))
    own = f"client.{PREFIX}alice.replies"
    alice_queue = allowed("client declares a durable reply queue client.<own name>.*", alice,
                          declare_queue(own, durable=True))
    allowed("scheduler replies into a client's durable reply queue", scheduler, publish("", own, b'{"type":"result"}'))
    if alice_queue is not None:
        report(get_one(alice, alice_queue, own) is not None, "client reads its own durable reply queue")
    allowed("client passively checks that hyperion.ingress exists", alice,
            lambda ch: ch.queue_declare(INGRESS, passive=True))
    other = f"client.{PREFIX}bob.replies"
    allowed("a second client declares its own reply queue", bob, declare_queue(other, durable=True))

    refused("client cannot publish to hyperion.internal", alice, publish(INTERNAL, STAGE_QUEUE))
    refused("client cannot publish to a stage queue through the default exchange", alice, publish("", STAGE_QUEUE))
    refused("client cannot publish to hyperion.telemetry", alice, publish(TELEMETRY, "worker.edge.x"))
    refused("client cannot publish to hyperion.plan", alice, publish(PLAN, ""))
    refused("client cannot publish to hyperion.dead", alice, publish(DEAD, ""))
    refused("client cannot read another client's queue", alice, consume(other))
    refused("client cannot declare a queue in another client's namespace", alice,
            declare_queue(f"client.{PREFIX}bob.stolen", durable=True))
    refused("client cannot consume hyperion.ingress", alice, consume(INGRESS))
    refused("client cannot delete hyperion.ingress", alice, lambda ch: ch.queue_delete(INGRESS))
    refused("client cannot (re)declare the hyperion.ingress exchange", alice, declare_exchange(INGRESS))
    refused("client cannot bind a queue to hyperion.telemetry", alice,
            lambda ch: ch.queue_bind(ch.queue_declare("", exclusive=True).method.queue, TELEMETRY, routing_key="#"))
    refused("client cannot consume a scheduler's server-named exclusive queue", alice, consume(names.get("cancel", "")),
            code=RESOURCE_LOCKED)

    # --- monitor: read-only view of telemetry --------------------------------------------------
    watch = allowed("monitor binds a server-named queue to hyperion.telemetry (#)", monitor,
                    lambda ch: subscribe(ch, TELEMETRY, "#", "monitor"))
    allowed("worker publishes telemetry again", worker, publish(TELEMETRY, "worker.edge.permtest"))
    if watch is not None:
        report(get_one(monitor, watch, names["monitor"]) is not None, "monitor receives telemetry")
    refused("monitor cannot publish to hyperion.internal", monitor, publish(INTERNAL, STAGE_QUEUE))
    refused("monitor cannot publish to the default exchange", monitor, publish("", STAGE_QUEUE))

    # --- bounded dead letters: the policy from scripts/broker-users keeps the newest ----------
    try:
        channel = worker.channel()
        channel.confirm_delivery()
        bound = int(os.environ["PERMTEST_DEAD_MAX_LENGTH"])
        for index in range(bound + 5):
            channel.basic_publish(DEAD, "", str(index).encode(), pika.BasicProperties(headers={"x-hyperion-error": "test"}))
        reader = scheduler.channel()
        held = reader.queue_declare(DEAD, passive=True).method.message_count
        report(held == bound, f"hyperion.dead holds at most {bound} dead letters (policy hyperion-dead-bounded)",
               f"holds {held}")
        last = None
        while True:
            method, _, body = reader.basic_get(DEAD, auto_ack=True)
            if method is None:
                break
            last = body
        report(last == str(bound + 4).encode(), "the newest dead letter is kept, the oldest dropped", f"last {last!r}")
    except Exception as error:
        report(False, "bounded dead letters", f"{type(error).__name__}: {error}")

    # --- authentication and vhost scope ---------------------------------------------------------
    try:
        connect("client", password="wrong-" + uuid.uuid4().hex).close()
        report(False, "a wrong password is refused", "connection opened")
    except AMQPConnectionError:
        report(True, "a wrong password is refused")
    try:
        connect("client", vhost="/").close()
        report(False, "a service user has no access to other vhosts", "connection opened")
    except AMQPConnectionError:
        report(True, "a service user has no access to other vhosts")

    for connection in (scheduler, planner, worker, alice, bob, monitor):
        try:
            connection.close()
        except Exception:
            pass


if __name__ == "__main__":
    try:
        main()
    except Exception as error:  # a setup failure (e.g. no broker) still ends with the summary line
        report(False, "permission checks ran to the end", f"{type(error).__name__}: {error}")
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
