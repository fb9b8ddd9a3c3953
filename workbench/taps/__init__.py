"""Live taps on topics and bounded replays of their history (``wb.tap``, ``wb.replay``).

Modules: ``tap`` (the background reader), ``buffer`` (its bounded ring buffer),
``records`` (decoding and typed frames), ``positions`` (start offsets from times),
``replay`` (bounded history reads) and ``view`` (notebook display).
A tap never joins a consumer group, commits an offset or writes to a topic.
"""
