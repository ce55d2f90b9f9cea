"""Celery settings of the workers, read from the environment (see docs/fleet.md).

Edit here to change a deployment's settings; keep JSON-only serialization, late acks
and the visibility timeout in step with YAML_WORKFLOW_VISIBILITY_TIMEOUT.
"""

from yaml_workflow.executors.celery.config import settings

globals().update(settings())
