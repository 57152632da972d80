"""Does what a real Celery client would, for tests: send tasks, broadcast control, inspect.

Run with Debian's /usr/bin/python3, broker settings in the same CAP_* variables app.py reads.
Every call reads one JSON request on stdin and prints one JSON answer on stdout (one line);
anything on stderr is diagnostics.

    send     request: [{"name", "args", "kwargs", "queue", "priority", "countdown",
                        "expires" (seconds), "task_id", "argsrepr", "kwargsrepr"}, ...]
                                                                 answer: ["<id>", ...]
    control  request: {"method", "arguments", "destination": [...], "timeout", "reply"}
             answer: the reply list as kombu returns it, [{"<node>": <value>}, ...]
    inspect  request: {"method", "arguments", "destination": [...], "timeout"}
             answer: {"<node>": <value>, ...} (merged, as `celery inspect` shows it)

Control and inspect refuse to run without an explicit destination: on a shared broker an
undirected broadcast reaches workers of other suites.
"""
import json
import sys

from app import app

# No connection pool: each connection is closed when released, with the AMQP handshake
# (connection.close / close-ok). The pool's force_close_all tears sockets down without it, and
# a socket closed that way right after the last publish can lose that publish (seen under CI
# load: the last task of a batch never reached its queue). RabbitMQ answers close-ok only after
# the connection's channels have handled every frame sent before it.
app.conf.broker_pool_limit = 0

# argsrepr / kwargsrepr: the text Celery puts in the message headers and events instead of
# saferepr(args) cut at 1024 characters, as a client may set it (any length, any content).
SEND_OPTIONS = ('queue', 'priority', 'countdown', 'expires', 'task_id', 'argsrepr', 'kwargsrepr')


def send(request):
    if not isinstance(request, list):
        raise ValueError('send expects a JSON list of tasks')
    ids = []
    with app.producer_or_acquire() as producer:
        for spec in request:
            options = {k: spec[k] for k in SEND_OPTIONS if spec.get(k) is not None}
            result = app.send_task(
                spec['name'],
                args=spec.get('args') or [],
                kwargs=spec.get('kwargs') or {},
                producer=producer,
                **options,
            )
            ids.append(result.id)
    return ids


def _destination(request):
    destination = request.get('destination')
    if not isinstance(destination, list) or not destination or not all(
        isinstance(d, str) and d for d in destination
    ):
        raise ValueError('an explicit, non-empty destination list of node names is required')
    return destination


def control(request):
    destination = _destination(request)
    reply = request.get('reply', True)
    replies = app.control.broadcast(
        request['method'],
        arguments=request.get('arguments') or {},
        destination=destination,
        reply=reply,
        timeout=float(request.get('timeout', 1.0)),
    )
    return replies if reply else None


def inspect(request):
    merged = {}
    for reply in control(dict(request, reply=True)):
        merged.update(reply)
    return merged


COMMANDS = {'send': send, 'control': control, 'inspect': inspect}


def main(argv):
    if len(argv) != 2 or argv[1] not in COMMANDS:
        print(f'usage: {argv[0]} {{{",".join(COMMANDS)}}} < request.json', file=sys.stderr)
        return 2
    request = json.load(sys.stdin)
    try:
        answer = COMMANDS[argv[1]](request)
    finally:
        # Pooled broker connections would otherwise be closed by interpreter teardown, noisily.
        app.pool.force_close_all()
    json.dump(answer, sys.stdout, default=repr)
    sys.stdout.write('\n')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
