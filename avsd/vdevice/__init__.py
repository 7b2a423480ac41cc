"""The virtual device: Bespoken's Virtual Device API served by avsd (``avsd vdevice``) and its YAML test runner.

Text (or audio) in, spoken to a back-end (Amazon, the local server, the offline assistant) through a headless
session, and what the back-end said back out as text: speech-to-text of the reply audio (``transcript``), the
Speak caption, the display card and the AudioPlayer stream URL. See ../shared/bespoken-virtual-device.md for the
protocol this reproduces, and docs/vdevice.md for usage.
"""
