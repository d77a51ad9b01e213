"""Shared fixtures of the widget tests."""

import pytest


@pytest.fixture
def capture_notes(monkeypatch):
    """``capture_notes(module)``: the messages that module shows, by kind, instead of napari."""

    def capture(module) -> dict[str, list[str]]:
        shown = {"error": [], "warning": [], "info": []}
        for kind in shown:
            monkeypatch.setattr(module, f"show_{kind}", shown[kind].append, raising=False)
        return shown

    return capture
