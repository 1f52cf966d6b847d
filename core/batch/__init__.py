"""Batch analysis: a folder, a zip or a list of images and videos in, one row per face out; resumable.

The pieces, each its own module so a worker imports only what it runs:
- `inputs`: discovery (`open_input`) yields names; an `ItemReader` reads a name where the work runs.
- `work`: `process_batch(pipeline, items)` is *all* the per-file work and never raises for a bad file; both
  engines call it, so they give the same rows.
- `engine`: `LocalEngine` (this process) and `run_batch`, which ties input, engine and output together;
  `ray_engine`: `RayEngine` (optional extra) on a Ray actor pool with one pipeline per actor.
- `schema`: the row's columns, their order and types, declared once for writers, readers and pages.
- `output`: a CSV or a folder of Parquet shards, plus the journal that makes reruns resume.
- `results`: reading a results file back for the Batch Results page.
"""
