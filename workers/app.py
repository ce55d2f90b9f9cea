"""The Celery app of the fleet: ``celery -A workers.app worker -E``."""

from yaml_workflow.executors.celery.app import create_app

app = create_app(config_object="workers.celeryconfig")
