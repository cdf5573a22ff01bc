"""Replay evaluation: routers run on recorded strong and weak outcomes, no model is called.

`data` loads the recordings, `cache` embeds them once, `baselines` holds the literature's
routers behind RAR's router interface, `engine` streams requests through a router, `metrics`
turns outcomes into cost-quality curves and summary numbers, `report` writes tables and plots.
"""
