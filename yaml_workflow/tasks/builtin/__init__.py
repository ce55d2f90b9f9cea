"""The built-in task types, one module per family.

Each module registers its tasks when imported; the registry imports only the module of a
task a workflow uses (``registry.BUILTIN_MODULES``), so this package imports nothing itself.
"""
