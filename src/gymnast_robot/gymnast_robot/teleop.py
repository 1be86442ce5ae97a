"""Teleop devices that turn an operator's input into 7-D Bridge actions, one per control period.

Keyboard (a terminal; no display needed, so it works over ssh) and a 3Dconnexion space mouse
(`pyspacemouse`, when installed and one is plugged in).
"""

from __future__ import annotations

import os
import select
import sys
import termios
import tty
from abc import ABC, abstractmethod

import numpy as np

# Key -> (action dimension, sign). Translation on the left hand, rotation on the right.
KEYS = {"w": (0, 1), "s": (0, -1), "a": (1, 1), "d": (1, -1), "r": (2, 1), "f": (2, -1),
        "u": (3, 1), "o": (3, -1), "i": (4, 1), "k": (4, -1), "j": (5, 1), "l": (5, -1)}
GRIPPER_KEY = " "
# Recorder controls: begin, end as success, end as failure, discard.
RECORD_KEYS = {"b": "start", "n": "success", "m": "failure", "x": "discard"}
HELP = ("w/s x  a/d y  r/f z  u/o roll  i/k pitch  j/l yaw  space gripper  "
        "b record  n stop (success)  m stop (failure)  x discard  q quit")


class TeleopDevice(ABC):
    @abstractmethod
    def poll(self) -> tuple[np.ndarray, list[str]]:
        """The action for this control period, and recorder commands (see RECORD_KEYS) or 'quit'."""

    def close(self) -> None:
        pass


class KeyboardTeleop(TeleopDevice):
    """Each key press moves one control period by `step` (m) or `turn` (rad); space toggles the gripper."""

    def __init__(self, step: float = 0.02, turn: float = 0.1, stream=None):
        self.step, self.turn = step, turn
        self.stream = stream if stream is not None else sys.stdin
        self.gripper = 1.0
        self._saved = None
        if stream is None:
            if not sys.stdin.isatty():
                raise RuntimeError("keyboard teleop needs an interactive terminal (run the teleop node in its own "
                                   "terminal, or use device:=spacemouse)")
            self._saved = termios.tcgetattr(sys.stdin)
            tty.setcbreak(sys.stdin.fileno())

    def read_keys(self) -> str:
        keys = ""
        while select.select([self.stream], [], [], 0)[0]:
            char = os.read(self.stream.fileno(), 64).decode(errors="ignore")
            if not char:
                break
            keys += char
        return keys

    def poll(self) -> tuple[np.ndarray, list[str]]:
        return self.actions_from(self.read_keys())

    def actions_from(self, keys: str) -> tuple[np.ndarray, list[str]]:
        action = np.zeros(7, np.float32)
        commands: list[str] = []
        for key in keys.lower():
            if key in KEYS:
                dim, sign = KEYS[key]
                action[dim] = sign * (self.step if dim < 3 else self.turn)
            elif key == GRIPPER_KEY:
                self.gripper = 1.0 - self.gripper
            elif key in RECORD_KEYS:
                commands.append(RECORD_KEYS[key])
            elif key == "q":
                commands.append("quit")
        action[6] = self.gripper
        return action, commands

    def close(self) -> None:
        if self._saved is not None:
            termios.tcsetattr(sys.stdin, termios.TCSADRAIN, self._saved)


class SpaceMouseTeleop(TeleopDevice):
    """6-DoF puck -> scaled deltas; left button toggles the gripper, right button starts/stops recording."""

    def __init__(self, step: float = 0.02, turn: float = 0.1, deadband: float = 0.1):
        try:
            import pyspacemouse
        except ImportError as exc:
            raise RuntimeError("space mouse teleop needs `pip install pyspacemouse` (and hidapi); "
                               "or use device:=keyboard") from exc
        if not pyspacemouse.open():
            raise RuntimeError("no space mouse found (is it plugged in, with read access to its /dev/hidraw*?)")
        self.mouse, self.step, self.turn, self.deadband = pyspacemouse, step, turn, deadband
        self.gripper, self._buttons, self._recording = 1.0, [0, 0], False

    def poll(self) -> tuple[np.ndarray, list[str]]:
        state = self.mouse.read()
        axes = np.array([state.y, -state.x, state.z, state.roll, state.pitch, -state.yaw], np.float32)
        axes[np.abs(axes) < self.deadband] = 0.0
        commands: list[str] = []
        buttons = list(state.buttons[:2])
        if buttons[0] and not self._buttons[0]:
            self.gripper = 1.0 - self.gripper
        if buttons[1] and not self._buttons[1]:
            commands.append("success" if self._recording else "start")
            self._recording = not self._recording
        self._buttons = buttons
        scale = np.array([self.step] * 3 + [self.turn] * 3, np.float32)
        return np.append(np.clip(axes, -1, 1) * scale, self.gripper).astype(np.float32), commands

    def close(self) -> None:
        self.mouse.close()


def make_device(name: str, step: float, turn: float) -> TeleopDevice:
    """'keyboard', 'spacemouse', or 'auto' (a space mouse when one is connected, else the keyboard)."""
    if name == "auto":
        try:
            return SpaceMouseTeleop(step, turn)
        except RuntimeError:
            return KeyboardTeleop(step, turn)
    if name == "keyboard":
        return KeyboardTeleop(step, turn)
    if name == "spacemouse":
        return SpaceMouseTeleop(step, turn)
    raise ValueError(f"unknown teleop device {name!r}; choose keyboard, spacemouse or auto")
