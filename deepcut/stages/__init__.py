"""Step 5 of the flow: DeepCut's stages 1-3 on a :class:`~deepcut.graph.patch_graph.PatchGraph`
(:func:`.run.run_stages`), giving per-stage patch labels, losses, notes and :class:`.timings.Timings`.
"""
