"""The avsd error tree.

Every failure avsd reports is one of these. Third-party exceptions (httpx, h2, pyaudio, vlc, webrtcvad, ...)
are translated into this tree at exactly one boundary per dependency and re-raised ``from exc``::

    AvsdError
     ├── ConfigError(AvsdError, ValueError)      bad config file/key/value          -> exit 78
     ├── CredentialsError(AvsdError)             credentials file missing/unreadable -> exit 78
     ├── AuthError                               LWA refused the grant (terminal: re-login)
     │    └── AuthUnavailableError               LWA unreachable / 5xx (retry with back-off)
     ├── AvsError                                anything between the device and AVS
     │    ├── AvsProtocolError                   malformed bytes from the server
     │    │    ├── MultipartError                bad/truncated multipart body
     │    │    ├── DirectiveParseError           a JSON part that is not a valid directive
     │    │    └── AttachmentTooLargeError       a binary part beyond the configured memory caps
     │    ├── AvsServerError(status, code, description)   non-2xx with a System.Exception body
     │    ├── AvsConnectionError                 transport failure, timeout, GOAWAY, stream reset
     │    │    ├── StreamRefusedError            the server never processed the request (safe to resend)
     │    │    └── ConnectionClosedError         GOAWAY before the answer: maybe processed (resend, may duplicate)
     │    └── NotConnectedError                  an ordinary event while not connected
     ├── AudioDeviceError                        microphone / PCM device missing or failing
     ├── WakeWordError                           wake-word engine cannot start
     └── PlaybackError                           player backend missing or failing

Leaf errors carry stable kebab-case ``code`` strings for logs and status lines.
Messages never contain tokens, refresh tokens or client secrets.
"""

from __future__ import annotations


class AvsdError(Exception):
    """Base of every error avsd raises on purpose."""

    code = "avsd-error"


class ConfigError(AvsdError, ValueError):
    """A configuration file, key or value is wrong. The message names the key."""

    code = "config-invalid"

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}" if key else message)
        self.key = key


class CredentialsError(AvsdError):
    """The credentials file is missing, unreadable, has bad permissions, or lacks a field."""

    code = "credentials-invalid"


class AuthError(AvsdError):
    """Login with Amazon refused a grant; the device has to be linked again (``avsd login``)."""

    code = "auth-refused"

    def __init__(self, error: str, description: str = "") -> None:
        super().__init__(f"LWA error {error}" + (f": {description}" if description else ""))
        self.error = error
        self.description = description


class AuthUnavailableError(AuthError):
    """Login with Amazon could not be reached or answered 5xx; retried with back-off."""

    code = "auth-unavailable"


class AvsError(AvsdError):
    """Something went wrong between the device and AVS."""

    code = "avs-error"


class AvsProtocolError(AvsError):
    """The server sent bytes that break the AVS protocol."""

    code = "avs-protocol"


class MultipartError(AvsProtocolError):
    """A multipart body was malformed or ended before its closing boundary."""

    code = "multipart-malformed"


class DirectiveParseError(AvsProtocolError):
    """A JSON part could not be read as ``{"directive": {...}}``. ``raw`` keeps the text for ExceptionEncountered."""

    code = "directive-malformed"

    def __init__(self, message: str, raw: str) -> None:
        super().__init__(message)
        self.raw = raw


class AttachmentTooLargeError(AvsProtocolError):
    """A binary part (Speak audio) grew beyond ``[attachments]`` max_bytes, or all of them beyond total_bytes.

    Only that attachment fails (its directive fails and is reported); the connection and everything else go on.
    """

    code = "attachment-too-large"


class AvsServerError(AvsError):
    """AVS answered with a non-2xx status and (usually) a JSON ``System.Exception`` body."""

    code = "avs-server-error"

    def __init__(self, status: int, exception_code: str, description: str = "") -> None:
        text = f"AVS answered {status} {exception_code}"
        super().__init__(f"{text}: {description}" if description else text)
        self.status = status
        self.exception_code = exception_code
        self.description = description


class AvsConnectionError(AvsError):
    """The HTTP/2 connection or a stream failed (reset, GOAWAY, EOF, timeout)."""

    code = "avs-connection"


class StreamRefusedError(AvsConnectionError):
    """The request was refused before the server processed it (GOAWAY, connection closed before sending).

    Mapped from httpcore at the HTTP boundary (avsd/avs/http.py); the AVS client resends such an event on the
    next connection when its body can be rebuilt."""

    code = "avs-stream-refused"


class ConnectionClosedError(AvsConnectionError):
    """The connection closed (GOAWAY) after the request was sent but before its answer: the server may or may not
    have processed it. Events are resent with the same messageId (at least once; AVS can de-duplicate)."""

    code = "avs-connection-closed"


class NotConnectedError(AvsError):
    """An ordinary event was sent while the device is not connected (and synchronized) to AVS."""

    code = "avs-not-connected"


class AudioDeviceError(AvsdError):
    """The microphone or the PCM output could not be opened or failed while running."""

    code = "audio-device"


class WakeWordError(AvsdError):
    """A wake-word engine could not be loaded or configured."""

    code = "wake-word"


class PlaybackError(AvsdError):
    """A player backend is missing (e.g. libvlc) or failed to play."""

    code = "playback"
