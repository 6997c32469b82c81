"""``carexpert serve``: the chat engine behind an OpenAI-compatible HTTP API.

The web stack (FastAPI, uvicorn) is an optional extra (``pip install 'carexpert[serve]'``)
and only ``app`` and ``server`` import it, when a server is actually started; importing
``carexpert`` or this package never does (tests/test_layering.py). The parts the app and
the CLI need without the web stack are plain modules here:

- ``status``: the server's ``status.json`` (URL, state, request counts, tokens/s), written by
  the server and read by the app, like a training run's; stopping a server by its pid.
- ``scheduler``: the bounded request queue in front of the model (503 when full).
- ``models``: which models a request may name (``base`` and finished runs, by run id).
- ``protocol``: OpenAI request and response shapes, and the errors in OpenAI's JSON form.
"""
