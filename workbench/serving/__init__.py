"""The recommendation service: ``workbench serve`` (see :mod:`workbench.serving.app`)."""
