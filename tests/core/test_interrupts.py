import os
import signal
import threading

import pytest

from dataset_registry.core.interrupts import Held


@pytest.fixture
def python_handlers():
    """SIGINT at Python's own handler and SIGTERM at one that raises, as under the CLI
    (a pytest started as a background job has SIGINT ignored); both put back after."""
    class Term(KeyboardInterrupt):  # as the CLI's Terminated
        pass

    def term(signum, frame):
        raise Term()

    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, term)
    yield Term
    for signum, handler in before.items():
        signal.signal(signum, handler)


def test_a_signal_is_noted_and_raised_by_deliver(python_handlers):
    with Held() as held:
        os.kill(os.getpid(), signal.SIGINT)
        assert held._noted == [signal.SIGINT]
        with pytest.raises(KeyboardInterrupt):
            held.deliver()
        held.deliver()  # delivered once
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_sigterm_raises_what_its_own_handler_raises(python_handlers):
    with pytest.raises(python_handlers), Held() as held:
        os.kill(os.getpid(), signal.SIGTERM)
        held.deliver()
        pytest.fail("deliver raised nothing")


def test_leaving_the_block_raises_what_was_noted_and_restores_the_handlers(python_handlers):
    with pytest.raises(KeyboardInterrupt), Held():
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)  # later ones are dropped: the first unwinds
    assert signal.getsignal(signal.SIGTERM).__name__ == "term"
    with Held():
        pass  # nothing noted: nothing raised


def test_an_interrupt_on_its_way_out_is_not_replaced_an_error_is(python_handlers):
    with pytest.raises(python_handlers), Held():
        os.kill(os.getpid(), signal.SIGINT)
        raise python_handlers("already stopping")
    with pytest.raises(KeyboardInterrupt) as info, Held():
        os.kill(os.getpid(), signal.SIGINT)
        raise ValueError("a task failed")
    assert isinstance(info.value.__context__, ValueError)
    with pytest.raises(KeyboardInterrupt, match="first"), Held():
        os.kill(os.getpid(), signal.SIGTERM)
        raise KeyboardInterrupt("first")


def test_handlers_that_are_not_python_functions_are_left_alone(python_handlers):
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    with Held():
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_outside_the_main_thread_nothing_is_held(python_handlers):
    seen = []

    def hold() -> None:
        with Held() as held:
            seen.append(held._handlers)

    thread = threading.Thread(target=hold)
    thread.start()
    thread.join()
    assert seen == [{}]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
