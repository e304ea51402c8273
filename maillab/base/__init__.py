"""The small base every part of maillab stands on: events and the bus, the clock, the sans-IO
markers, errors, durable-file helpers, the group-commit thread, SASL parsing, the event loop."""
