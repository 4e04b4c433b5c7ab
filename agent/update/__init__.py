"""Updates of the agent itself: the update bundle (``bundle.py``: one file holding the
agent and its dependencies as wheels, a manifest and optionally a signature), the
side-by-side installer (``installer.py``: one virtual environment per version under an
install root, the active one chosen by an atomic symlink switch), the update service
that answers the central system's UpdateFirmware (``service.py``) and the supervisor
that rolls a version back when it does not come up healthy (``supervisor.py``).
CPython-only (tarfile, venv, pip, subprocesses, ``cryptography``): docs/updates.md.
"""
