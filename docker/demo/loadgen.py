"""Sends a steady mix of demo tasks, with the images queue in waves that outgrow one worker
process for a few minutes in every WAVE_MINUTES: enough to fire CeleryQueueBacklog and let
celery-autopilot grow the images pool, then shrink it back when the wave has passed.

LOAD_SCALE multiplies every rate (0.5 = half the load).
"""
import itertools
import math
import os
import random
import time

from app import app

SCALE = float(os.environ.get('LOAD_SCALE', '1'))
WAVE_MINUTES = float(os.environ.get('WAVE_MINUTES', '20'))


def images_per_second(now):
    # Between 0.3/s and 2.3/s: one images process handles about 1/s.
    phase = (now % (WAVE_MINUTES * 60)) / (WAVE_MINUTES * 60)
    return 0.3 + 2.0 * max(0.0, math.sin(2 * math.pi * phase))


def main():
    started = time.time()
    for tick in itertools.count():
        now = time.time() - started
        sends = [
            ('tasks.add', (tick, 1), 3.0),
            ('tasks.sync_inventory', (f'sku-{tick}',), 1.0),
            ('tasks.send_email', (f'user{tick}@example.com',), 0.5),
            ('tasks.resize_image', (f'img-{tick}',), images_per_second(now)),
            ('tasks.build_report', (f'report-{tick}',), 1 / 30),
        ]
        for name, args, per_second in sends:
            expected = per_second * SCALE
            count = int(expected) + (1 if random.random() < expected - int(expected) else 0)
            for _ in range(count):
                app.send_task(name, args=args)
        time.sleep(1)


if __name__ == '__main__':
    main()
