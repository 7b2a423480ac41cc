"""``avsd`` command line. ``main(argv) -> exit code``; errors are one line, a traceback only with ``--debug``.

Exit codes: 0 ok, 1 runtime failure, 2 usage, 78 configuration error (systemd's RestartPreventExitStatus).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from avsd import __version__
from avsd.backends import Backend, add_backend_argument
from avsd.errors import AvsdError, ConfigError, CredentialsError

if TYPE_CHECKING:
    from avsd.config import Config

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_CONFIG = 0, 1, 2, 78

_LOGGER = logging.getLogger("avsd")


def setup_logging(level: str, *, debug: bool = False) -> None:
    """Journald without timestamps under systemd, else stderr. Only avsd's own loggers are configured."""
    from avsd.logredact import protect, quiet_protocol_loggers
    from avsd.systemd import journal_handler

    handler = journal_handler()
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        fmt = "%(levelname)s %(name)s: %(message)s" if os.environ.get("JOURNAL_STREAM") else (
            "%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        handler.setFormatter(logging.Formatter(fmt))
    protect(handler)  # redacts tokens; drops hpack/h2/httpcore DEBUG records
    quiet_protocol_loggers()
    root = logging.getLogger("avsd")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else getattr(logging, level.upper(), logging.INFO))
    root.propagate = False


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="debug logging and tracebacks")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="avsd", description="Headless Alexa Voice Service appliance daemon.")
    parser.add_argument("--version", action="version", version=f"avsd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run the daemon (what the systemd service starts)")
    run.add_argument("--config", type=Path, default=None, help="TOML config file (default /etc/avsd/avsd.toml)")
    run.add_argument("--input", type=Path, default=None, help="read this WAV instead of the microphone")
    run.add_argument(
        "--hardware", choices=("auto", "mock", "none"), default="auto", help="GPIO: real pins, mock pins, or none"
    )
    add_backend_argument(run, default=Backend.AVS)
    _add_common(run)

    demo = sub.add_parser("demo", help="run the whole pipeline offline against the built-in emulator")
    demo.add_argument("--input", type=Path, default=None, help="a WAV to speak to the device (default: shipped)")
    demo.add_argument("--say", action="append", default=[], metavar="TEXT",
                      help="say TEXT to the device (espeak-ng); repeat: each next one answers when asked")
    demo.add_argument("--tap", action="store_true", help="--say: tap the button instead of saying the wake word")
    add_backend_argument(demo, default=Backend.EMULATOR)
    demo.add_argument("--events-json", type=Path, default=None, help="write every event and directive as JSON lines")
    demo.add_argument("--out", type=Path, default=None, help="directory for the reply WAVs (default: a temp dir)")
    demo.add_argument("--fast", action="store_true",
                      help="feed the input and play the replies as fast as possible, not in real time")
    demo.add_argument("--engine", default=None, help="wake-word engine (default: the configured one)")
    demo.add_argument("--config", type=Path, default=None, help="TOML config for the device side")
    _add_common(demo)

    login = sub.add_parser("login", help="link this device to an Amazon account (Code-Based Linking)")
    login.add_argument("--config", type=Path, default=None, help="TOML config file (default /etc/avsd/avsd.toml)")
    login.add_argument("--client-id", default=None, help="LWA client id (default: auth.client_id)")
    login.add_argument(
        "--browser", action="store_true",
        help="authorization-code flow through a local page on http://localhost:PORT/ (needs the client secret "
        "in $AVSD_CLIENT_SECRET or typed in)",
    )
    login.add_argument("--port", type=int, default=9000, help="port of the local page for --browser (9000)")
    login.add_argument("--no-qr", action="store_true", help="do not draw the QR code")
    login.add_argument(
        "--min-interval", type=float, default=5.0, help=argparse.SUPPRESS  # tests poll faster than the SDK's 5 s
    )
    _add_common(login)

    doctor = sub.add_parser("doctor", help="check config, login, network, microphone, speaker, GPIO, wake word")
    doctor.add_argument("--config", type=Path, default=None, help="TOML config file (default /etc/avsd/avsd.toml)")
    doctor.add_argument("--hardware", choices=("auto", "mock", "none"), default="auto", help="GPIO to check")
    doctor.add_argument("--wake", type=Path, default=None, metavar="FILE.wav",
                        help="only run the wake stage over FILE.wav: each model's best score, and whether it wakes")
    _add_common(doctor)

    devices = sub.add_parser("devices", help="list audio input and output devices")
    _add_common(devices)

    for name, text in (("stop", "stop the ringing alert (or Alexa speaking)"),
                       ("mute", "toggle privacy mute (closes the microphone)"),
                       ("status", "show the dialog state and the AVS connection")):
        control = sub.add_parser(name, help=text)
        control.add_argument("--config", type=Path, default=None, help="TOML config (to find the state dir)")
        _add_common(control)

    config = sub.add_parser("config", help="print the configuration file with every key and its default")
    config.add_argument("--defaults", action="store_true", help="print the documented defaults (config/avsd.toml)")
    config.add_argument("--check", type=Path, default=None, metavar="FILE", help="validate FILE; exit 78 if bad")
    _add_common(config)

    ask = sub.add_parser("ask", help="send WAV files or text to Alexa, save the replies (MP3 + WAV)")
    from avsd.ask import add_arguments as add_ask_arguments

    add_ask_arguments(ask)
    _add_common(ask)

    emulator = sub.add_parser("emulator", help="run the local AVS server (emulator)")
    from avsd.emulator.cli import add_arguments as add_emulator_arguments

    add_emulator_arguments(emulator)
    _add_common(emulator)

    from avsd.phone.cli import add_phone_arguments, add_sim_arguments

    phone = sub.add_parser("phone", help="answer phone calls (Twilio Media Streams, Vonage websockets)")
    add_phone_arguments(phone)
    _add_common(phone)
    phone_sim = sub.add_parser("phone-sim", help="call the phone bridge as Twilio or Vonage would")
    add_sim_arguments(phone_sim)
    _add_common(phone_sim)

    from avsd.vdevice.args import add_test_arguments, add_vdevice_arguments

    vdevice = sub.add_parser("vdevice", help="serve Bespoken's Virtual Device API (skill tests) on loopback")
    add_vdevice_arguments(vdevice)
    _add_common(vdevice)
    test = sub.add_parser("test", help="run Bespoken e2e YAML test suites against a back-end")
    add_test_arguments(test)
    _add_common(test)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    # Before anything opens PortAudio or VLC: libasound's and libjack's stderr chatter goes to the log instead.
    from avsd.audio.native_log import route_native_audio_errors

    route_native_audio_errors()
    try:
        return _dispatch(args)
    except KeyboardInterrupt:
        return 130
    except (ConfigError, CredentialsError) as exc:
        if getattr(args, "debug", False):
            raise
        print(f"avsd: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except AvsdError as exc:
        if getattr(args, "debug", False):
            raise
        print(f"avsd: {exc}", file=sys.stderr)
        return EXIT_FAILURE


async def _run_on_backend(config: Config, args: argparse.Namespace, path: Path | None) -> int:
    """``avsd run --backend emulator [--scenario FILE]``: the daemon against a local emulator in the process (its
    credentials in a temporary directory; the configured state directory is used as usual)."""
    import tempfile

    from avsd.backends import open_backend, session_config
    from avsd.main import run_daemon

    with tempfile.TemporaryDirectory(prefix="avsd-run-") as scratch:
        async with open_backend(args.backend, scenario_path=args.scenario, cert_dir=Path(scratch)) as session:
            print(f"avsd run: {session.describe()}", file=sys.stderr, flush=True)
            return await run_daemon(session_config(config, session, Path(scratch)), args, config_path=path)


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "emulator":
        from avsd.emulator.cli import run as run_emulator

        setup_logging("info", debug=args.debug)
        return asyncio.run(run_emulator(args))
    if args.command in ("phone", "phone-sim"):
        from avsd.phone.cli import run_phone, run_sim

        setup_logging("info" if args.command == "phone" else "warning", debug=args.debug)
        return asyncio.run(run_phone(args) if args.command == "phone" else run_sim(args))
    if args.command == "ask":
        from avsd.ask import run_ask

        setup_logging("error", debug=args.debug)
        return asyncio.run(run_ask(args))
    if args.command in ("vdevice", "test"):
        try:
            from avsd.vdevice.cli import run_tests, run_vdevice
        except ImportError as exc:  # the vdevice extra is not installed
            print(f"avsd {args.command}: needs {exc.name}: pip install 'avsd[vdevice]'", file=sys.stderr)
            return EXIT_FAILURE

        setup_logging("warning" if args.command == "test" else "info", debug=args.debug)
        return asyncio.run(run_vdevice(args) if args.command == "vdevice" else run_tests(args))
    if args.command == "demo":
        from avsd.demo import run_demo

        setup_logging("warning", debug=args.debug)
        return asyncio.run(run_demo(args))
    if args.command == "run":
        from avsd.config import load_config
        from avsd.main import run_daemon

        path = _config_path(args)
        config = load_config(path)
        setup_logging(config.daemon.log_level, debug=args.debug)
        if args.backend is Backend.ASSISTANT:  # the same as avs.backend = "assistant" in the config
            from avsd.config import override

            config = override(config, "avs.backend", Backend.ASSISTANT.value)
        elif args.backend is Backend.EMULATOR or args.scenario is not None:
            return asyncio.run(_run_on_backend(config, args, path))
        return asyncio.run(run_daemon(config, args, config_path=path))
    if args.command == "login":
        return _login(args)
    if args.command == "doctor":
        from avsd.doctor import doctor

        setup_logging("error", debug=args.debug)
        if args.wake is not None:
            from avsd.config import load_config
            from avsd.wake.report import doctor_wake

            return doctor_wake(load_config(_config_path(args)).wake, args.wake, sys.stdout)
        return asyncio.run(doctor(_config_path(args), sys.stdout, hardware=args.hardware))
    if args.command == "devices":
        setup_logging("warning", debug=False)
        return _devices()
    if args.command in ("stop", "mute", "status"):
        from avsd.config import load_config
        from avsd.control import send_command, socket_path

        reply = send_command(socket_path(load_config(_config_path(args)).state_dir), args.command)
        print(reply)
        return EXIT_OK if reply.startswith(("ok", "none")) else EXIT_FAILURE
    if args.command == "config":
        from avsd.config import defaults_toml, load_config

        if args.check is not None:
            load_config(args.check)
            print(f"{args.check}: ok")
            return EXIT_OK
        sys.stdout.write(defaults_toml())
        return EXIT_OK
    raise AssertionError(args.command)  # pragma: no cover - argparse restricts the choices


def _config_path(args: argparse.Namespace) -> Path | None:
    from avsd.config import DEFAULT_CONFIG_PATH

    path: Path | None = getattr(args, "config", None)
    if path is None and DEFAULT_CONFIG_PATH.exists():
        path = DEFAULT_CONFIG_PATH
    return path


def _login(args: argparse.Namespace) -> int:
    import getpass

    from avsd.avs.client import make_ssl_context
    from avsd.avs.http import HttpClient
    from avsd.config import load_config
    from avsd.login import LoginTarget, login_browser, login_cbl

    config = load_config(_config_path(args))
    setup_logging("warning", debug=args.debug)
    target = LoginTarget(
        client_id=args.client_id or config.auth.client_id,
        product_id=config.auth.product_id,
        serial=config.device_serial_number(),
        credentials_path=config.credentials_path,
        token_url=config.token_url(),
        codepair_url=config.codepair_url(),
        authorize_url=config.authorize_url(),
    )
    secret = ""
    if args.browser:
        # Never a command-line argument: it would show up in `ps` and the shell history.
        secret = os.environ.get("AVSD_CLIENT_SECRET", "")
        if not secret and sys.stdin.isatty():
            secret = getpass.getpass("client secret of the security profile: ")

    async def go() -> None:
        async with HttpClient(ssl_context=make_ssl_context(config.avs.ca_file)) as http:
            if args.browser:
                await login_browser(target, http, sys.stdout, client_secret=secret, port=args.port)
            else:
                await login_cbl(target, http, sys.stdout, min_interval_s=args.min_interval, qr=not args.no_qr)

    asyncio.run(go())
    print(f"Linked. Credentials saved to {target.credentials_path} (mode 0600).")
    return EXIT_OK


def _devices() -> int:
    from avsd.audio.mic import list_devices

    devices = list_devices()
    inputs = [(d, d.max_input_channels) for d in devices if d.max_input_channels > 0]
    outputs = [(d, d.max_output_channels) for d in devices if d.max_output_channels > 0]
    for title, chosen in (("Input devices (audio.device):", inputs),
                          ("Output devices (playback.output_device):", outputs)):
        print(title)
        for d, channels in chosen:
            print(f"  {d.index:>3}  {d.name}  ({channels} ch, {d.default_sample_rate:.0f} Hz)")
        if not chosen:
            print("  none")
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
