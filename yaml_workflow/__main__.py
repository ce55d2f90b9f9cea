"""``python -m yaml_workflow``: the same as the ``yaml-workflow`` command."""

from .cli.main import main

if __name__ == "__main__":
    main()
