"""The step kinds of a workflow, one module each; :func:`geoseg.workflow._kind.kinds` finds them."""
