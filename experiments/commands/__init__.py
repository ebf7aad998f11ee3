"""The commands behind `python -m experiments.<name>`: each module's `main(argv)` and `parse_args`.

They import jax at the top, so they are started through their entry shims (experiments/<name>.py,
via experiments.entry), which install the allocator first; tests call them in-process.
"""
