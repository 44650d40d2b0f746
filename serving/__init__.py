"""Online decision service: the trained global policy behind a small HTTP API.

``python -m serving --checkpoint <path>`` serves REACH's ``POST /get_action`` and the
two-tier ``POST /v1/route`` / ``POST /v1/schedule`` decisions; see ``docs/serving.md``.
"""
