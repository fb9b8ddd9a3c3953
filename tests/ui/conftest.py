from tests.jupyter.fixtures import event_stream, kernel_prefix, lab  # noqa: F401
