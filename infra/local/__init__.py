"""The local stack: the whole helpdesk on one machine, no AWS account, no Docker.

``python -m infra.local`` (``make dev``) starts, in one process and in the foreground:

- moto (``aws.py``), holding the resources CDK deploys, built from the same definitions
  (``resources.py``: one builder per resource; the tests' fixtures call the same code), made safe
  for the stack's many threads and flat in cost as the tables grow (``emulator.py``);
- the API front (``api_gateway.py``): HTTP -> API Gateway REST proxy event -> the API function,
  in-process;
- the console (``console.py``): tickets and the outbox (``outbox.py``), local only;
- the pumps (``pumps.py``): the table's stream -> the publisher, SNS -> the delivery function and
  the team mailboxes, what was sent -> the outbox; moto's Step Functions executor runs the
  escalation chains, keeping AWS's time (``executor.py``);

and stops them cleanly on Ctrl-C or SIGTERM. ``stack.py`` is where the pieces are listed: a later
capability adds a resource builder (``resources.BUILDERS``) and/or a background service
(``stack.SERVICES``: an HTTP or SMTP server, or a ``services.Poller`` pump).

Keep this module free of imports: ``python -m infra.local`` loads it first.
"""
