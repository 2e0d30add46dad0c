"""Serving a protector: the HTTP service (``mllm-protector serve``) and its Ray Serve deployment.

Both wrap one :class:`~protector_models.Protector` and add only transport: requests are validated and limited,
concurrent ones share detector passes through the micro-batcher, and the verdicts are the core's. FastAPI and
uvicorn come with the ``serve`` extra, Ray with the ``ray`` extra; :mod:`.settings` needs neither.
"""
