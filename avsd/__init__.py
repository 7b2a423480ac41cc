"""avsd: a headless Alexa Voice Service appliance daemon for the Raspberry Pi."""

__version__ = "0.1.0"
