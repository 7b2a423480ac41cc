"""``avsd doctor``: check everything the appliance needs, print a pass/fail table with a remedy per failure.

Each check is a small async function returning a :class:`CheckResult`; a check never raises (an unexpected
exception is itself a failure with its type in the detail). Checks that depend on an earlier one (the token
refresh needs credentials, AVS needs a token) are skipped with the reason when it failed. The exit code is 1 on
any failure, so scripts and the install script can use it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from avsd.avs.http import HttpClient
from avsd.config import Config, load_config
from avsd.errors import (
    AuthError,
    AuthUnavailableError,
    AvsConnectionError,
    AvsdError,
    ConfigError,
    CredentialsError,
)

_LOGGER = logging.getLogger(__name__)

MIC_SECONDS = 2.0
# A working microphone in a quiet room still shows noise above this (dBFS); digital silence is -inf.
MIC_SILENT_DBFS = -90.0


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    ok: bool
    detail: str
    remedy: str = ""
    skipped: bool = False


@dataclass(slots=True)
class DoctorContext:
    """What the checks share: the config (once loaded) and the access token (once refreshed)."""

    config_path: Path | None
    hardware: str = "auto"
    config: Config | None = None
    access_token: str | None = field(default=None, repr=False)


Check = Callable[[DoctorContext], Awaitable[CheckResult]]


def _fail(name: str, detail: str, remedy: str) -> CheckResult:
    return CheckResult(name, False, detail, remedy)


def _skip(name: str, why: str) -> CheckResult:
    return CheckResult(name, False, f"skipped: {why}", "fix the check above first", skipped=True)


async def check_config(ctx: DoctorContext) -> CheckResult:
    try:
        ctx.config = load_config(ctx.config_path)
    except ConfigError as exc:
        return _fail("config", str(exc), f"edit {ctx.config_path}; `avsd config --defaults` lists every key")
    where = str(ctx.config_path) if ctx.config_path else "built-in defaults (no config file)"
    return CheckResult("config", True, where)


async def check_credentials(ctx: DoctorContext) -> CheckResult:
    if ctx.config is None:
        return _skip("credentials", "no valid config")
    from avsd.avs.credentials import load_credentials

    if ctx.config.avs.backend == "assistant":
        return CheckResult("credentials", True, "not needed: avs.backend = assistant (offline)")
    try:
        load_credentials(ctx.config.credentials_path)
    except CredentialsError as exc:
        return _fail("credentials", str(exc), "link the device: `avsd login` (or `avsd login --browser`)")
    return CheckResult("credentials", True, str(ctx.config.credentials_path))


def _http(config: Config) -> HttpClient:
    from avsd.avs.client import make_ssl_context

    return HttpClient(ssl_context=make_ssl_context(config.avs.ca_file), timeout=15.0)


async def check_token(ctx: DoctorContext) -> CheckResult:
    config = ctx.config
    if config is None:
        return _skip("token refresh", "no valid config")
    if config.avs.backend == "assistant":
        return CheckResult("token refresh", True, "not needed: avs.backend = assistant (offline)")
    from avsd.avs.auth import TokenProvider

    async with _http(config) as http:
        tokens = TokenProvider(
            token_url=config.token_url(), credentials_path=config.credentials_path, http=http, refresh_ahead_s=0
        )
        try:
            ctx.access_token = await tokens.get_token()
        except CredentialsError:
            return _skip("token refresh", "no credentials")
        except AuthUnavailableError as exc:
            return _fail("token refresh", str(exc), f"check the network and DNS; LWA is {config.token_url()}")
        except AuthError as exc:
            return _fail("token refresh", str(exc), "the link was revoked or the client id is wrong: `avsd login`")
    return CheckResult("token refresh", True, f"LWA {config.token_url()} issued an access token")


async def check_avs(ctx: DoctorContext) -> CheckResult:
    config = ctx.config
    if config is not None and config.avs.backend == "assistant":
        return CheckResult("AVS endpoint", True, "not needed: avs.backend = assistant (offline)")
    if config is None or ctx.access_token is None:
        return _skip("AVS endpoint", "no access token")
    from avsd.avs.client import resolve_endpoint

    base = resolve_endpoint(config.avs.endpoint)
    async with _http(config) as http:
        try:
            headers = {"authorization": f"Bearer {ctx.access_token}"}
            response = await http.request("GET", f"{base}/ping", headers=headers)
        except AvsConnectionError as exc:
            return _fail(
                "AVS endpoint", f"{base}: {exc}",
                "check the network, DNS and avs.endpoint (NA/EU/FE); a proxy must allow HTTP/2",
            )
    if response.status != 204:
        return _fail("AVS endpoint", f"{base}/ping answered {response.status}",
                     "403: relink with `avsd login`; other codes: check avs.endpoint")
    return CheckResult("AVS endpoint", True, f"{base} answers ping over {response.http_version}")


def level_dbfs(pcm: bytes) -> float:
    """RMS level of 16-bit PCM in dBFS (-inf for digital silence). Pure."""
    import numpy as np

    samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype="<i2").astype(np.float64)
    if samples.size == 0:
        return -math.inf
    rms = float(np.sqrt(np.mean(samples**2)))
    return 20 * math.log10(rms / 32768.0) if rms > 0 else -math.inf


async def check_microphone(ctx: DoctorContext) -> CheckResult:
    if ctx.config is None:
        return _skip("microphone", "no valid config")
    from avsd.audio.mic import MicrophoneSource

    mic = MicrophoneSource(ctx.config.audio.device_spec(), queue_frames=400)
    wanted = int(MIC_SECONDS * 16000 * 2)
    chunks: list[bytes] = []
    try:
        async with asyncio.timeout(MIC_SECONDS + 5):
            async for block in mic.frames():
                chunks.append(block)
                if sum(map(len, chunks)) >= wanted:
                    break
    except AvsdError as exc:
        return _fail("microphone", str(exc), "plug in the microphone; `avsd devices` lists inputs; set audio.device")
    except TimeoutError:
        return _fail("microphone", "no audio within the time limit", "the device is busy or hung: is another "
                     "program recording? (`fuser -v /dev/snd/*`)")
    finally:
        await mic.close()
    level = level_dbfs(b"".join(chunks))
    if level <= MIC_SILENT_DBFS:
        return _fail(
            "microphone", "recorded only digital silence", "unmute the capture control in `alsamixer -V capture`"
        )
    return CheckResult("microphone", True, f"recorded {MIC_SECONDS:.0f} s, level {level:.1f} dBFS")


async def check_speaker(ctx: DoctorContext) -> CheckResult:
    if ctx.config is None:
        return _skip("speaker", "no valid config")
    from avsd.agents.notifications import chime_wav
    from avsd.playback.base import Media, PlaybackOutcome
    from avsd.root import select_player

    with tempfile.TemporaryDirectory(prefix="avsd-doctor-") as tmp:
        chime = Path(tmp) / "chime.wav"
        chime.write_bytes(chime_wav())
        try:
            player = select_player(ctx.config.playback, name="doctor")
            try:
                playback = player.play(Media.file(chime))
                async with asyncio.timeout(10):
                    outcome = await playback.finished()
            finally:
                await player.close()
        except (AvsdError, TimeoutError) as exc:
            return _fail("speaker", f"{type(exc).__name__}: {exc}",
                         "check playback.backend / playback.output_device and `aplay -l`")
    if outcome is PlaybackOutcome.FAILED:
        error = getattr(playback, "error", None)
        return _fail("speaker", f"playing the chime failed: {error}", "check playback.output_device and `aplay -l`")
    return CheckResult("speaker", True, f"played a chime through {player.name} (did you hear it?)")


async def check_gpio(ctx: DoctorContext) -> CheckResult:
    config = ctx.config
    if config is None:
        return _skip("GPIO", "no valid config")
    if ctx.hardware == "none" or (config.button.pin is None and config.led.kind in ("none", "terminal")):
        return CheckResult("GPIO", True, "no button or GPIO LEDs configured")
    from avsd.hw.factory import HardwareError, pin_factory_for
    from avsd.hw.leds import NullLed
    from avsd.root import select_led_driver

    loop = asyncio.get_running_loop()
    used: list[str] = []
    try:
        factory = pin_factory_for("mock" if ctx.hardware == "mock" else "auto")
        if config.button.pin is not None:
            from avsd.hw.button import GpioButton

            GpioButton(config.button, lambda action: None, loop=loop, pin_factory=factory).close()
            used.append(f"button GPIO{config.button.pin}")
        led = select_led_driver(config.led, pin_factory=factory)
        if not isinstance(led, NullLed):
            used.append(f"LED {config.led.kind}")
        led.close()
    except HardwareError as exc:
        return _fail("GPIO", str(exc), "check the pin numbers (BCM) and that the user is in the gpio/spi groups")
    return CheckResult("GPIO", True, ", ".join(used) or "nothing to check")


async def check_wake_word(ctx: DoctorContext) -> CheckResult:
    if ctx.config is None:
        return _skip("wake word", "no valid config")
    from avsd.root import select_engine

    try:
        engine = await asyncio.to_thread(select_engine, ctx.config.wake)
        try:
            engine.process(bytes(3200), 1600)  # 100 ms of silence must go through without an error
        finally:
            engine.close()
    except AvsdError as exc:
        return _fail("wake word", str(exc), "install the engine's package or choose another wake.engine")
    return CheckResult("wake word", True, f"{engine.name} loaded ({ctx.config.wake.keyword})")


async def check_assistant(ctx: DoctorContext) -> CheckResult:
    if ctx.config is None:
        return _skip("assistant", "no valid config")
    if ctx.config.avs.backend != "assistant":
        return CheckResult("assistant", True, "not used (avs.backend = avs)")
    from avsd.assistant.selftest import self_test

    ok, detail, remedy = await asyncio.to_thread(self_test, ctx.config.assistant)
    return CheckResult("assistant", True, detail) if ok else _fail("assistant", detail, remedy)


CHECKS: tuple[Check, ...] = (
    check_config, check_credentials, check_token, check_avs,
    check_microphone, check_speaker, check_gpio, check_wake_word, check_assistant,
)


async def run_checks(ctx: DoctorContext, checks: tuple[Check, ...] = CHECKS) -> list[CheckResult]:
    results = []
    for check in checks:
        try:
            result = await check(ctx)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a check must never take the doctor down
            _LOGGER.debug("check %s crashed", check.__name__, exc_info=True)
            result = _fail(check.__name__.removeprefix("check_"), f"{type(exc).__name__}: {exc}",
                           "run with --debug and report this")
        results.append(result)
    return results


def format_table(results: list[CheckResult]) -> str:
    """A plain-text table: check, PASS/FAIL/SKIP, detail; then the remedies of the failures."""
    width = max(len(r.name) for r in results)
    lines = []
    for r in results:
        mark = "PASS" if r.ok else ("SKIP" if r.skipped else "FAIL")
        lines.append(f"{r.name:<{width}}  {mark}  {r.detail}")
    failures = [r for r in results if not r.ok and not r.skipped]
    if failures:
        lines.append("")
        lines.append("To fix:")
        lines.extend(f"  {r.name}: {r.remedy}" for r in failures)
    return "\n".join(lines) + "\n"


async def doctor(config_path: Path | None, out: TextIO, *, hardware: str = "auto") -> int:
    results = await run_checks(DoctorContext(config_path, hardware=hardware))
    out.write(format_table(results))
    out.flush()
    if any(r.name == "config" and not r.ok for r in results):
        return 78  # the exit-78 contract: a bad config file, as for every subcommand that reads it
    return 0 if all(r.ok for r in results) else 1
