"""The Celery app the integration tests run: real Celery 5.2.6 workers and clients.

Everything that differs between suites (broker, isolation prefix, sent events, pool restarts,
default queue) comes from CAP_* environment variables, so one module serves every test without
code changes. Tasks are named `tasks.<x>` explicitly: tests send them by name, never by import.
"""
import json
import logging
import os
import signal
import time
import warnings

from billiard.util import set_pdeathsig
from celery import Celery, signals
from celery.contrib.abortable import AbortableTask
from celery.exceptions import Reject, SecurityWarning

# Test machines and CI containers run as root; the warning says so on every worker start.
warnings.filterwarnings('ignore', category=SecurityWarning)


def _env_flag(name):
    return os.environ.get(name, '') in ('1', 'true', 'yes')


app = Celery('cap', set_as_current=True)
app.conf.update(
    broker_url=os.environ.get('CAP_BROKER_URL', 'amqp://guest:guest@127.0.0.1:5672//'),
    broker_transport_options=json.loads(os.environ.get('CAP_TRANSPORT_OPTIONS') or '{}'),
    # A test that loses its broker should fail on its own timeout, not hang in connect retries
    # that outlast it; a few retries still ride over a short blip.
    broker_connection_max_retries=int(os.environ.get('CAP_CONNECTION_MAX_RETRIES', '10')),
    task_default_queue=os.environ.get('CAP_DEFAULT_QUEUE') or 'celery',
    task_send_sent_event=_env_flag('CAP_SEND_SENT_EVENT'),
    worker_pool_restarts=_env_flag('CAP_POOL_RESTARTS'),
    # No result backend unless a suite asks for one (CAP_RESULT_BACKEND, e.g. the task API's
    # result and abort tests): tests observe tasks through events and inspect replies.
    task_ignore_result=not os.environ.get('CAP_RESULT_BACKEND'),
    result_backend=os.environ.get('CAP_RESULT_BACKEND') or None,
    # Logs are captured through a pipe and shown when a test fails: no colours, one handler.
    worker_log_color=False,
    worker_hijack_root_logger=True,
    worker_redirect_stdouts=True,
    worker_redirect_stdouts_level='INFO',
)

rig_log = logging.getLogger('cap.rig')


class QuotaExceeded(Exception):
    """A task exception that is not a builtin, so its repr carries a user class name."""


@app.task(name='tasks.add')
def add(x, y):
    return x + y


@app.task(name='tasks.fail')
def fail():
    raise ValueError('boom')


@app.task(name='tasks.fail_custom')
def fail_custom():
    raise QuotaExceeded('quota exceeded')


@app.task(name='tasks.retry_once', bind=True)
def retry_once(self):
    if self.request.retries == 0:
        raise self.retry(exc=KeyError('again'), countdown=1, max_retries=1)
    return 'retried'


@app.task(name='tasks.sleep')
def sleep(seconds):
    time.sleep(float(seconds))
    return seconds


@app.task(name='tasks.hold')
def hold(seconds, *args, **kwargs):
    """Runs `seconds` holding arguments that stand for personal data (the payload-role tests)."""
    time.sleep(float(seconds))
    return 'held'


@app.task(name='tasks.reject_late', acks_late=True)
def reject_late():
    raise Reject('rejected on purpose', requeue=False)


@app.task(name='tasks.noop')
def noop():
    return None


@app.task(name='tasks.fail_with')
def fail_with(message):
    """A failure whose exception text (and so traceback) the test chooses, e.g. markup."""
    raise ValueError(message)


@app.task(name='tasks.spawn_child', bind=True)
def spawn_child(self):
    """Sends tasks.add from inside a task: Celery sets the child's parent_id and root_id."""
    return add.delay(1, 1).id


# A task name made of markup, for the console's escaping tests: Celery accepts any string.
@app.task(name="tasks.<svg/onload=document.title='owned'>")
def hostile_name(*args, **kwargs):
    return [args, kwargs]


@app.task(name='tasks.abortable', bind=True, base=AbortableTask)
def abortable(self, seconds):
    """Runs until aborted through the result backend (AbortableTask), at most `seconds`."""
    deadline = time.monotonic() + float(seconds)
    while time.monotonic() < deadline:
        if self.is_aborted():
            return 'aborted'
        time.sleep(0.2)
    return 'not aborted'


@signals.worker_ready.connect
def _announce_consuming(sender=None, **_kwargs):
    """Logs `rig: consuming <nodename>` once the event loop has really started.

    Celery logs "ready." just before its event loop starts. On Redis the worker only PSUBSCRIBEs
    to the pidbox channel on the loop's first tick, and a PUBLISH with no subscriber is lost, so a
    control command sent right after "ready." can vanish. Callbacks queued with `call_soon` run in
    that first tick after the poll-start hooks, so this line comes after the subscription.
    """
    hostname = getattr(sender, 'hostname', '?')
    hub = getattr(sender, 'hub', None)

    def announce():
        rig_log.warning('rig: consuming %s', hostname)

    if hub is None:
        announce()
    else:
        hub.call_soon(announce)


_worker_main_pid = None


@signals.worker_init.connect
def _die_with_test_process(**_kwargs):
    """Workers must not outlive the test process, even when it is killed without cleanup.

    The kernel's parent-death signal does this without a watcher thread (a second thread would
    also make Celery defer SIGTERM handling to its next loop tick, slowing every warm stop).
    """
    global _worker_main_pid
    _worker_main_pid = os.getpid()
    parent = os.environ.get('CAP_PARENT_PID')
    if parent:
        _kill_self_when_parent_dies(int(parent))


@signals.worker_process_init.connect
def _die_with_worker(**_kwargs):
    """Prefork pool children go with their worker: a kill -9 of the worker leaves no orphans."""
    # The solo pool sends this signal in the worker's own process.
    if _worker_main_pid is not None and os.getpid() != _worker_main_pid:
        _kill_self_when_parent_dies(_worker_main_pid)


def _kill_self_when_parent_dies(parent_pid):
    set_pdeathsig(signal.SIGKILL)
    # The parent may have died before the signal was armed.
    if os.getppid() != parent_pid:
        os.kill(os.getpid(), signal.SIGKILL)
