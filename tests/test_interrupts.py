"""Ctrl-C and SIGTERM in a Lightning run reach our commands as KeyboardInterrupt."""

import signal
import sys
from collections.abc import Iterator

import pytest
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.demos.boring_classes import BoringModel

from torchgeo_simclr.interrupts import (
    Terminated,
    deferred_interrupts,
    keyboard_interrupts,
    sigterm_as_interrupt,
)


class CtrlC(Callback):
    """Press Ctrl-C at the second training step."""

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: object, index: int
    ) -> None:
        if index == 1:
            raise KeyboardInterrupt


def trainer(*callbacks: Callback) -> Trainer:
    return Trainer(
        max_steps=4,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=list(callbacks),
    )


def test_lightning_exits_on_ctrl_c_and_we_get_the_interrupt_back() -> None:
    """Lightning turns Ctrl-C into exit status 1; the context undoes that."""
    with pytest.raises(SystemExit) as exit_:
        trainer(CtrlC()).fit(BoringModel())
    assert exit_.value.code == 1
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt), keyboard_interrupts():
        trainer(CtrlC()).fit(BoringModel())
    assert signal.getsignal(signal.SIGINT) == handler


def exit_while_interrupted(code: int) -> None:
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt:
        sys.exit(code)


def test_other_exits_pass_through() -> None:
    with pytest.raises(SystemExit) as exit_, keyboard_interrupts():
        sys.exit(1)
    assert exit_.value.code == 1
    with pytest.raises(SystemExit) as exit_, keyboard_interrupts():
        exit_while_interrupted(2)
    assert exit_.value.code == 2


@pytest.mark.usefixtures("terminal_signals")
def test_ctrl_c_is_held_until_the_block_is_done() -> None:
    """All the steps run, then the interrupt comes, as if pressed after them."""
    done = []

    def steps() -> None:
        with deferred_interrupts():
            signal.raise_signal(signal.SIGINT)
            done.append("renamed")

    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        steps()
    assert done == ["renamed"]
    assert signal.getsignal(signal.SIGINT) == handler
    with deferred_interrupts():
        done.append("quiet")
    assert done == ["renamed", "quiet"]


class Kill(Callback):
    """Send this process SIGTERM at the second training step."""

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: object, index: int
    ) -> None:
        if index == 1:
            signal.raise_signal(signal.SIGTERM)


@pytest.fixture
def sigterm_raises(terminal_signals: None) -> Iterator[None]:
    """SIGTERM handled as the commands handle it, for one test."""
    handler = signal.getsignal(signal.SIGTERM)
    with sigterm_as_interrupt():
        yield
    assert signal.getsignal(signal.SIGTERM) == handler


@pytest.mark.usefixtures("sigterm_raises")
def test_sigterm_stops_a_lightning_run_and_comes_back_as_terminated() -> None:
    """Lightning alone notes SIGTERM; ours stops the run as Ctrl-C would."""
    steps = []

    class Count(Callback):
        def on_train_batch_end(self, *args: object) -> None:
            steps.append(1)

    with pytest.raises(Terminated), keyboard_interrupts():
        trainer(Kill(), Count()).fit(BoringModel())
    assert steps == [1]  # stopped at the second step, not after it


@pytest.mark.usefixtures("sigterm_raises")
def test_sigterm_is_held_until_the_block_is_done() -> None:
    done = []

    def steps() -> None:
        with deferred_interrupts():
            signal.raise_signal(signal.SIGTERM)
            done.append("renamed")

    with pytest.raises(Terminated):
        steps()
    assert done == ["renamed"]
