"""Speaker 1.0 (protocol reference §6.5): SetVolume, AdjustVolume, SetMute; VolumeChanged / MuteChanged; the
VolumeState context. Volume and mute survive a restart.

One volume for the device (the SDK's AVS_SPEAKER_VOLUME type): it is applied to every player, and the content
player also follows focus ducking (:class:`~avsd.focus.DuckableVolume`: ducking restores the volume the user has
*now*, even if it changed while ducked). With ``alsa_mixer_control`` set, the volume and mute go to the ALSA mixer
through ``amixer`` instead and the players stay at full scale (the content player still ducks in software, since
the mixer is shared with speech).

Persistence: a small JSON file written atomically (temp file + fsync + rename), not SQLite: two scalars read once at
start-up and written on change do not need a schema or a WAL, and a power cut leaves either the old or the new file.
A missing or broken file falls back to ``initial_volume`` (and says so).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from avsd.agents.events import EventSender
from avsd.avs.messages import Directive, Event, context_entry
from avsd.errors import DirectiveParseError
from avsd.fileio import StateFileWriter, atomic_write
from avsd.focus import DuckableVolume
from avsd.playback.base import Player
from avsd.settings import setting

_LOGGER = logging.getLogger(__name__)
NAMESPACE = "Speaker"
STATE_FILE = "speaker.json"


@dataclass(frozen=True, slots=True)
class SpeakerSettings:
    initial_volume: int = setting(50, "volume (0-100) before AVS or the user ever set one", min=0, max=100)
    volume_step: int = setting(10, "volume change of one volume-up/down button press", min=1, max=50)
    alsa_mixer_control: str = setting(
        "", "ALSA simple mixer control for the volume (e.g. PCM, Master); empty = player volume"
    )
    alsa_card: str = setting("", "ALSA card for the mixer control; empty = default")
    amixer_path: str = setting("amixer", "the amixer program")


# ----- persistence -------------------------------------------------------------------------------------------


def read_json_state(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; None when missing or unreadable (logged)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        _LOGGER.warning("ignoring unreadable state file %s: %s", path, exc)
        return None
    if not isinstance(doc, dict):
        _LOGGER.warning("ignoring state file %s: not a JSON object", path)
        return None
    return doc


def write_json_state(path: Path, doc: Mapping[str, Any]) -> None:
    """Atomically replace ``path`` with ``doc`` (blocking: fsync; on the loop use :class:`StateFileWriter`)."""
    atomic_write(path, json.dumps(dict(doc)).encode())


def load_volume(path: Path, initial_volume: int) -> DuckableVolume:
    doc = read_json_state(path) or {}
    volume, muted = doc.get("volume"), doc.get("muted")
    if not isinstance(volume, int) or isinstance(volume, bool) or not 0 <= volume <= 100:
        volume = initial_volume
    return DuckableVolume(user_volume=volume, muted=muted is True)


# ----- ALSA mixer --------------------------------------------------------------------------------------------


def amixer_command(settings: SpeakerSettings, volume: int, muted: bool) -> list[str]:
    """The ``amixer`` command line that sets the mixer control to ``volume`` percent and (un)mutes it. Pure."""
    command = [settings.amixer_path, "-q"]
    if settings.alsa_card:
        command += ["-c", settings.alsa_card]
    # "sset CONTROL 42% unmute": one call sets both; controls without a switch ignore the mute word.
    command += ["sset", settings.alsa_mixer_control, f"{max(0, min(100, volume))}%", "mute" if muted else "unmute"]
    return command


# ----- payload checks ----------------------------------------------------------------------------------------


def _int_in(directive: Directive, key: str, low: int, high: int) -> int:
    value = directive.payload.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        # Out of range is UNEXPECTED_INFORMATION_RECEIVED (§6.5), which the sequencer reports for this error.
        raise DirectiveParseError(f"{directive.qualified_name} needs integer '{key}' in {low}..{high}", directive.raw)
    return value


class SpeakerAgent:
    """The device volume: directives, local changes (buttons/CLI), ducking for the content player."""

    def __init__(
        self,
        *,
        events: EventSender,
        players: Sequence[Player] = (),
        content_players: Sequence[Player] = (),
        state_dir: Path,
        settings: SpeakerSettings | None = None,
        duck_level: int = 20,
    ) -> None:
        self.settings = settings or SpeakerSettings()
        self._events = events
        self._players = list(players)
        self._content_players = list(content_players)
        self._path = state_dir / STATE_FILE
        self._writer = StateFileWriter(self._path, "volume")
        loaded = load_volume(self._path, self.settings.initial_volume)
        self._volume = DuckableVolume(user_volume=loaded.user_volume, muted=loaded.muted, duck_level=duck_level)
        self._mixer_task: asyncio.Task[None] | None = None
        self._mixer_pending = False
        self.mixer_commands: list[list[str]] = []  # the last few amixer command lines run (status, tests)
        self._apply_players()
        with contextlib.suppress(RuntimeError):  # no loop yet: the first change sets the mixer
            asyncio.get_running_loop()
            self._apply_mixer()  # the persisted volume, after a restart

    # ----- state --------------------------------------------------------------------------------------------

    @property
    def volume(self) -> DuckableVolume:
        return self._volume

    @property
    def uses_mixer(self) -> bool:
        return bool(self.settings.alsa_mixer_control)

    def context(self) -> dict[str, Any]:
        return context_entry(NAMESPACE, "VolumeState", self._payload())

    def _payload(self) -> dict[str, Any]:
        return {"volume": self._volume.user_volume, "muted": self._volume.muted}

    # ----- DirectiveHandler ---------------------------------------------------------------------------------

    def handles(self) -> Collection[tuple[str, str]]:
        return {(NAMESPACE, "SetVolume"), (NAMESPACE, "AdjustVolume"), (NAMESPACE, "SetMute")}

    def blocking(self, directive: Directive) -> bool:
        return False

    async def handle(self, directive: Directive) -> None:
        if directive.name == "SetVolume":
            self.set_volume(_int_in(directive, "volume", 0, 100))
        elif directive.name == "AdjustVolume":
            self.adjust_volume(_int_in(directive, "volume", -100, 100))
        else:
            mute = directive.payload.get("mute")
            if not isinstance(mute, bool):
                raise DirectiveParseError("SetMute needs boolean 'mute'", directive.raw)
            self.set_mute(mute)

    async def cancel(self, directive: Directive) -> None:
        return None

    # ----- changes (directives, buttons, CLI) ---------------------------------------------------------------

    def set_volume(self, volume: int) -> None:
        """Absolute volume; unmutes without a MuteChanged (SDK), then VolumeChanged."""
        self._change(self._volume.set_volume(volume), "VolumeChanged")

    def adjust_volume(self, delta: int) -> None:
        self._change(self._volume.adjust_volume(delta), "VolumeChanged")

    def volume_up(self) -> None:
        self.adjust_volume(self.settings.volume_step)

    def volume_down(self) -> None:
        self.adjust_volume(-self.settings.volume_step)

    def set_mute(self, muted: bool) -> None:
        self._change(self._volume.set_mute(muted), "MuteChanged")

    def toggle_mute(self) -> None:
        self.set_mute(not self._volume.muted)

    def _change(self, new: DuckableVolume, event_name: str) -> None:
        old, self._volume = self._volume, new
        _LOGGER.info("volume %d%s", new.user_volume, " (muted)" if new.muted else "")
        if (old.user_volume, old.muted) != (new.user_volume, new.muted):
            self._save()
        self._apply_players()
        self._apply_mixer()
        # The SDK sends the event even when nothing changed: AVS asked, AVS gets the confirmation.
        self._events.send(Event.new(NAMESPACE, event_name, self._payload()))

    # ----- focus: ducking of the content player -------------------------------------------------------------

    def duck(self) -> None:
        if not self._volume.ducked:
            self._volume = self._volume.duck()
            self._apply_players()

    def unduck(self) -> None:
        if self._volume.ducked:
            self._volume = self._volume.unduck()
            self._apply_players()

    # ----- output -------------------------------------------------------------------------------------------

    def _apply_players(self) -> None:
        volume = self._volume
        if self.uses_mixer:
            # The mixer carries the user volume and mute; players play at full scale, content ducks in software.
            plain, content = 100, (min(volume.duck_level, 100) if volume.ducked else 100)
        else:
            plain, content = (0 if volume.muted else volume.user_volume), volume.effective
        for player in self._players:
            player.set_volume(plain)
        for player in self._content_players:
            player.set_volume(content)

    def _apply_mixer(self) -> None:
        if not self.uses_mixer:
            return
        # One amixer at a time; changes made while it runs are applied once more afterwards (latest wins).
        self._mixer_pending = True
        if self._mixer_task is None or self._mixer_task.done():
            self._mixer_task = asyncio.get_running_loop().create_task(self._run_mixer(), name="amixer")

    async def _run_mixer(self) -> None:
        while self._mixer_pending:
            self._mixer_pending = False
            command = amixer_command(self.settings, self._volume.user_volume, self._volume.muted)
            self.mixer_commands = [*self.mixer_commands[-7:], command]
            if shutil.which(command[0]) is None:
                _LOGGER.warning("cannot set the ALSA mixer: %s not found", command[0])
                return
            try:
                proc = await asyncio.create_subprocess_exec(
                    *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
                )
                _, err = await proc.communicate()
            except OSError as exc:
                _LOGGER.warning("amixer failed to start: %s", exc)
                return
            if proc.returncode != 0:
                detail = err.decode(errors="replace").strip()
                _LOGGER.warning("amixer %s failed (%s): %s", " ".join(command[2:]), proc.returncode, detail)

    def _save(self) -> None:
        self._writer.save({"volume": self._volume.user_volume, "muted": self._volume.muted})

    async def close(self) -> None:
        await self._writer.flush()
        task = self._mixer_task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task})


__all__ = [
    "SpeakerAgent",
    "SpeakerSettings",
    "StateFileWriter",
    "amixer_command",
    "load_volume",
    "read_json_state",
    "write_json_state",
]
