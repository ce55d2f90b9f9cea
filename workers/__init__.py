"""The Celery worker entry point: ``celery -A workers.app worker -E`` (from any directory)."""
