"""puccicam: a pet camera for a Raspberry Pi with a private web gallery.

This package holds the glue (configuration, logging, the command line); the capture
pipeline lives in :mod:`camera` and the web app in :mod:`webapp`.
"""

__version__ = "0.1.0"
