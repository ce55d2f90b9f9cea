"""The Celery app of the fleet: ``celery -A workers.app worker -E``."""

from yaml_workflow.executors.celery.app import create_app
from yaml_workflow.executors.celery.fire import register_fire

app = create_app(config_object="workers.celeryconfig")
register_fire(app)  # `ywf.fire`: workers turn schedules' ticks into runs
