"""The capture pipeline: sources, validation, storage, retention and the grabber loop."""
