"""The demo Celery app of docker-compose.yml: a few queues with different habits, so the
dashboard, the alerts and the remediation loop have something real to show.

    default  quick tasks (tasks.add, tasks.sync_inventory, which fails now and then)
    emails   tasks.send_email: flaky, retried with a countdown
    images   tasks.resize_image: slow; the load generator's waves back this queue up, which
             fires CeleryQueueBacklog, which makes celery-autopilot grow the images worker's pool
    reports  tasks.build_report: no worker consumes it, so CeleryQueueNoWorkers fires (its
             remediation rule is a dry run)
"""
import os
import random
import time

from celery import Celery


class SMTPTemporaryError(Exception):
    """What a mail relay answers when it is overloaded."""


app = Celery('demo')
app.conf.update(
    broker_url=os.environ.get('BROKER_URL', 'amqp://guest:guest@rabbitmq:5672//'),
    result_backend=os.environ.get('RESULT_BACKEND', 'redis://redis:6379/0'),
    result_expires=3600,
    # task-sent events give queue wait times; -E on the workers gives every other task event.
    task_send_sent_event=True,
    worker_send_task_events=True,
    task_default_queue='default',
    task_routes={
        'tasks.send_email': {'queue': 'emails'},
        'tasks.resize_image': {'queue': 'images'},
        'tasks.build_report': {'queue': 'reports'},
    },
    # One message per process at a time: a backlog stays visible in the broker queue.
    worker_prefetch_multiplier=1,
    task_acks_late=True,
    broker_connection_retry_on_startup=True,
)


@app.task(name='tasks.add')
def add(x, y):
    return x + y


@app.task(name='tasks.sync_inventory')
def sync_inventory(sku):
    time.sleep(random.uniform(0.05, 0.2))
    if random.random() < 0.05:
        raise ConnectionError(f'inventory service unreachable for {sku}')
    return sku


@app.task(name='tasks.send_email', bind=True, max_retries=3)
def send_email(self, to):
    time.sleep(random.uniform(0.05, 0.3))
    if random.random() < 0.2:
        raise self.retry(exc=SMTPTemporaryError(f'421 try again later ({to})'), countdown=2)
    return to


@app.task(name='tasks.resize_image')
def resize_image(image_id):
    time.sleep(random.uniform(0.6, 1.4))
    return image_id


@app.task(name='tasks.build_report')
def build_report(report_id):
    time.sleep(3)
    return report_id
