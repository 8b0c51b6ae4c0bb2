import os
import signal
import threading

import pytest

from dataset_registry.core.interrupts import HeldInterrupts


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
    with HeldInterrupts() as held:
        os.kill(os.getpid(), signal.SIGINT)
        assert held._noted == [signal.SIGINT]
        with pytest.raises(KeyboardInterrupt):
            held.deliver()
        held.deliver()  # delivered once
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_sigterm_raises_what_its_own_handler_raises(python_handlers):
    with pytest.raises(python_handlers), HeldInterrupts() as held:
        os.kill(os.getpid(), signal.SIGTERM)
        held.deliver()
        pytest.fail("deliver raised nothing")


def test_leaving_the_block_raises_what_was_noted_and_restores_the_handlers(python_handlers):
    with pytest.raises(KeyboardInterrupt), HeldInterrupts():
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)  # later ones are dropped: the first unwinds
    assert signal.getsignal(signal.SIGTERM).__name__ == "term"
    with HeldInterrupts():
        pass  # nothing noted: nothing raised


def test_an_interrupt_on_its_way_out_is_not_replaced_an_error_is(python_handlers):
    with pytest.raises(python_handlers), HeldInterrupts():
        os.kill(os.getpid(), signal.SIGINT)
        raise python_handlers("already stopping")
    with pytest.raises(KeyboardInterrupt) as info, HeldInterrupts():
        os.kill(os.getpid(), signal.SIGINT)
        raise ValueError("a task failed")
    assert isinstance(info.value.__context__, ValueError)
    with pytest.raises(KeyboardInterrupt, match="first"), HeldInterrupts():
        os.kill(os.getpid(), signal.SIGTERM)
        raise KeyboardInterrupt("first")


def test_noted_signals_run_their_own_handlers_in_the_order_they_came(python_handlers):
    ran = []
    signal.signal(signal.SIGINT, lambda signum, frame: ran.append((signum, frame is not None)))
    with pytest.raises(python_handlers), HeldInterrupts() as held:
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)  # noted once
        os.kill(os.getpid(), signal.SIGTERM)
        assert ran == []
        held.deliver()
    assert ran == [(signal.SIGINT, True)]  # the one that raised nothing, then SIGTERM's


def test_one_left_installed_acts_as_the_handler_it_replaced(python_handlers):
    """A signal amid the swaps of handlers can leave the noting one installed: it then
    runs the handler it replaced, not notes for ever."""
    held = HeldInterrupts()
    with held:
        pass
    signal.signal(signal.SIGINT, held._note)  # as a signal during __exit__ could leave it
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)


def test_nested_the_inner_one_delivers_through_the_outer(python_handlers):
    with HeldInterrupts() as outer:
        with pytest.raises(KeyboardInterrupt), HeldInterrupts() as inner:
            os.kill(os.getpid(), signal.SIGINT)
            assert inner._noted == [signal.SIGINT] and outer._noted == []
            inner.deliver()
        assert outer._noted == []
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_handlers_that_are_not_python_functions_are_left_alone(python_handlers):
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    with HeldInterrupts():
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_outside_the_main_thread_nothing_is_held(python_handlers):
    seen = []

    def hold() -> None:
        with HeldInterrupts() as held:
            seen.append(held._handlers)

    thread = threading.Thread(target=hold)
    thread.start()
    thread.join()
    assert seen == [{}]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
