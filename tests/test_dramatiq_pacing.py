"""How many messages a Dramatiq consumer may hold, from the CPU its queue's messages cost."""

from __future__ import annotations

from dramatiq import Message
from dramatiq.broker import MessageProxy

from dramatiq_impl.pacing import HOLD_CPU_SECONDS, MessageCpu
from shared.tasks import burn_cpu

PREFETCH = 16


def _process(cpu: MessageCpu, queue: str, seconds: float) -> None:
    message = MessageProxy(Message(queue_name=queue, actor_name="a", args=(), kwargs={}, options={}))
    cpu.before_process_message(None, message)
    burn_cpu(seconds)
    cpu.after_process_message(None, message)


def test_outside_a_worker_a_consumer_holds_its_prefetch() -> None:
    assert MessageCpu().window("compute", PREFETCH) == PREFETCH


def test_in_a_worker_the_first_fetch_takes_one_message_until_one_is_measured() -> None:
    cpu = MessageCpu()
    cpu.before_worker_boot(None, None)
    assert cpu.window("compute", PREFETCH) == 1
    _process(cpu, "compute", 0.0)
    assert cpu.window("compute", PREFETCH) == PREFETCH


def test_cpu_heavy_messages_shrink_the_window_of_their_queue_only() -> None:
    cpu = MessageCpu()
    cpu.before_worker_boot(None, None)
    _process(cpu, "result", 0.0)
    for _ in range(3):
        _process(cpu, "compute", HOLD_CPU_SECONDS)  # each at least the whole hold
    assert cpu.window("compute", PREFETCH) in (1, 2)
    assert cpu.window("result", PREFETCH) == PREFETCH


def test_the_window_grows_back_when_messages_get_cheap() -> None:
    cpu = MessageCpu()
    cpu.before_worker_boot(None, None)
    _process(cpu, "compute", 2 * HOLD_CPU_SECONDS)
    assert cpu.window("compute", PREFETCH) == 1
    for _ in range(100):  # a moving average: a few dozen cheap messages outweigh the heavy one
        _process(cpu, "compute", 0.0)
    assert cpu.window("compute", PREFETCH) == PREFETCH
