"""Sweeps and tuning, above train and eval.

Sweeps (`mimsa sweep`): a grid file of models × datasets × encoders × variants × seeds, one run
directory per combination, trained one after another in one process (`local`) or as Ray Tune
trials (`ray`): `grid` (the file), `plan` (checks, skip/resume, the status table), `local`,
`ray_backend`, `runner` (plan + backend). Tuning (`mimsa tune`): `tune`, `tune_ray`.
"""
